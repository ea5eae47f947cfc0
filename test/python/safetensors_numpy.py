"""Reads a safetensors file with NumPy alone (no safetensors package): the published layout, an
8-byte little-endian header length, the JSON header, then the tensors' little-endian bytes.

load(path) -> {name: (dtype, ndarray)}, dtype as the file names it (F32, BF16, BOOL, ...).
NumPy has no bfloat16: a BF16 tensor is returned as its raw bits, a '<u2' array.
"""
import json
import struct
import sys

import numpy as np

NUMPY_DTYPE = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "|i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "|u1",
    "BOOL": "|b1",
}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    if 8 + length > len(data):
        raise ValueError(f"{path}: header length {length} runs past the end of the file")
    header = json.loads(data[8 : 8 + length].decode("utf-8"))
    header.pop("__metadata__", None)
    buffer = memoryview(data)[8 + length :]
    out = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = np.dtype(NUMPY_DTYPE[entry["dtype"]])
        array = np.frombuffer(buffer[begin:end], dtype=dtype).reshape(entry["shape"])
        out[name] = (entry["dtype"], array)
    return out


if __name__ == "__main__":
    for name, (dtype, array) in load(sys.argv[1]).items():
        print(name, dtype, array.shape)
