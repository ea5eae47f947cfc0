"""Prints, as JSON, every array of the files given: a .npz through numpy.load, a .safetensors
through the NumPy-only reader beside this script. For each file, {name: {dtype, shape, hex}}:
dtype is NumPy's dtype string (`<f4`, `|b1`, ...) for .npz and the file's dtype (F32, BF16, ...)
for .safetensors; hex is the array's bytes as NumPy holds them (array.tobytes()).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_numpy  # noqa: E402


def dump(path):
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as archive:
            return {
                name: {"dtype": archive[name].dtype.str, "shape": list(archive[name].shape), "hex": archive[name].tobytes().hex()}
                for name in archive.files
            }
    return {
        name: {"dtype": dtype, "shape": list(array.shape), "hex": array.tobytes().hex()}
        for name, (dtype, array) in safetensors_numpy.load(path).items()
    }


print(json.dumps({path: dump(path) for path in sys.argv[1:]}))
