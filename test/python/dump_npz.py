"""Prints, as JSON, every array of the .npz files given, as numpy.load reads them:
{file: {name: {"dtype": NumPy's dtype string ("<f4", "|b1", ...), "shape": [...],
"sha256": hex SHA-256 of array.tobytes()}}}.
"""
import hashlib
import json
import sys

import numpy as np


def dump(path):
    with np.load(path, allow_pickle=False) as archive:
        out = {}
        for name in archive.files:
            array = archive[name]
            out[name] = {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
            }
        return out


print(json.dumps({path: dump(path) for path in sys.argv[1:]}))
