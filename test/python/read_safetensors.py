"""Reads a safetensors file with NumPy alone, from the published layout, and prints what it holds.

Usage: read_safetensors.py FILE

The layout: an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON (a map of
tensor name to {"dtype", "shape", "data_offsets": [begin, end]}, and an optional "__metadata__" map
of strings), then the byte buffer the offsets point into. Prints one JSON object on stdout:

    {"metadata": {...}, "dataStart": 8 + N,
     "tensors": {name: {"dtype": "F16", "shape": [2, 3], "sha256": hex of the tensor's bytes,
                        "values": [...]}}}

Values are flattened row-major: floats as JSON numbers (float16 and bfloat16 widened exactly to
float64), or the strings "nan", "inf", "-inf"; 64-bit integers as decimal strings; bool as 0/1.
bfloat16 has no NumPy dtype: its elements are read as uint16 bits and widened by a 16-bit shift
into float32. Exits 1 with a message on stderr for a file that breaks the layout.
"""

import hashlib
import json
import struct
import sys

import numpy as np

DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}


def fail(message):
    sys.stderr.write(message + "\n")
    sys.exit(1)


def as_json_values(dtype, array):
    flat = array.reshape(-1)
    if dtype == "BF16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    if dtype in ("F64", "F32", "F16", "BF16"):
        out = []
        for value in flat.astype(np.float64).tolist():
            if value != value:
                out.append("nan")
            elif value in (float("inf"), float("-inf")):
                out.append("inf" if value > 0 else "-inf")
            else:
                out.append(value)
        return out
    if dtype in ("I64", "U64"):
        return [str(v) for v in flat.tolist()]
    if dtype == "BOOL":
        return [1 if v else 0 for v in flat.tolist()]
    return flat.tolist()


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    if len(data) < 8:
        fail("shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        fail("header length %d runs past the end" % length)
    header = json.loads(data[8 : 8 + length].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    buffer = memoryview(data)[8 + length :]
    tensors = {}
    covered = 0
    for name, info in sorted(header.items(), key=lambda item: tuple(item[1]["data_offsets"])):
        begin, end = info["data_offsets"]
        if begin != covered:
            fail("tensor %s starts at %d, the previous ended at %d" % (name, begin, covered))
        covered = end
        dtype = np.dtype(DTYPES[info["dtype"]])
        array = np.frombuffer(buffer[begin:end], dtype=dtype).reshape(info["shape"])
        tensors[name] = {
            "dtype": info["dtype"],
            "shape": list(array.shape),
            "sha256": hashlib.sha256(buffer[begin:end]).hexdigest(),
            "values": as_json_values(info["dtype"], array),
        }
    if covered != len(buffer):
        fail("%d bytes follow the last tensor" % (len(buffer) - covered))
    json.dump({"metadata": metadata, "dataStart": 8 + length, "tensors": tensors}, sys.stdout)


main()
