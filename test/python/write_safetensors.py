"""Writes a safetensors file with NumPy alone, from the published layout, as an independent writer.

Usage: write_safetensors.py FILE

Its choices differ from roundlog's on purpose: the header lists the tensors in an order of its own
(not by size or name), the buffer holds them in yet another order, the header is not padded (so
most tensors are not aligned to their element size), and it has metadata. Every dtype the format
and roundlog share is written. Prints {name: {"dtype", "shape", "sha256", "bits"}} on stdout, where
"bits" is the hex of the tensor's bytes, so the reader can be compared bit for bit.
"""

import hashlib
import json
import struct
import sys

import numpy as np


def bfloat16_bits(values):
    """The bfloat16 bits nearest each value, ties to even (from the float32 bits)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


TENSORS = [
    ("layer.0.weight", "F16", np.array([[1.0, -2.5, 65504.0], [6e-8, -0.0, np.inf]], dtype="<f2")),
    ("b", "BF16", bfloat16_bits([1.0, 3.140625, -2.0, 1e-39])),
    ("flags", "BOOL", np.array([True, False, True], dtype="?")),
    ("counts", "I64", np.array([-(2**63), 2**63 - 1, 0], dtype="<i8")),
    ("bytes", "U8", np.array([0, 255, 7], dtype="u1")),
    ("big", "F64", np.array([np.pi, -1e308, 5e-324], dtype="<f8")),
    ("small", "I8", np.array([-128, 127], dtype="i1")),
    ("mid", "I16", np.array([[-32768], [32767]], dtype="<i2")),
    ("w", "F32", np.arange(6, dtype="<f4").reshape(2, 3) / 7),
    ("i", "I32", np.array([-(2**31), 2**31 - 1], dtype="<i4")),
    ("u16", "U16", np.array([65535], dtype="<u2")),
    ("u32", "U32", np.array([4294967295, 1], dtype="<u4")),
    ("u64", "U64", np.array([2**64 - 1], dtype="<u8")),
    ("scalar", "F32", np.array(2.5, dtype="<f4")),
    ("empty", "F32", np.zeros((0, 3), dtype="<f4")),
]


def main():
    buffer = bytearray()
    entries = {}
    # The buffer in reverse order of the header.
    for name, dtype, array in reversed(TENSORS):
        raw = np.ascontiguousarray(array).tobytes()
        entries[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [len(buffer), len(buffer) + len(raw)]}
        buffer += raw
    header = {"__metadata__": {"writer": "test/python/write_safetensors.py", "format": "np"}}
    for name, _, _ in TENSORS:
        header[name] = entries[name]
    text = json.dumps(header).encode("utf-8")
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(buffer)
    out = {}
    for name, dtype, array in TENSORS:
        raw = np.ascontiguousarray(array).tobytes()
        out[name] = {"dtype": dtype, "shape": list(array.shape), "sha256": hashlib.sha256(raw).hexdigest(), "bits": raw.hex()}
    json.dump(out, sys.stdout)


main()
