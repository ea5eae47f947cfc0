"""Writes safetensors files whose headers come from Python's json module, as an independent writer.

Usage: write_safetensors_header.py FOLDER

Each file has the same tensors (one uint8 element each) under names chosen to exercise the header's
JSON: quotes, backslashes, slashes, control characters, non-ASCII and astral characters (which
json.dumps writes as \\uXXXX surrogate pairs by default), an empty name and "__proto__". The files
differ in how json.dumps writes them: ASCII escapes or raw UTF-8, indented or compact, keys sorted
or not, padded with spaces or not. Prints {file name: {"names": [names in buffer order],
"metadata": {...}}} on stdout.
"""

import json
import os
import struct
import sys

NAMES = [
    "layer.0.weight",
    'q"uote',
    "back\\slash",
    "sl/ash",
    "tab\tnew\nline\u0001",
    "caf\u00e9",
    "\u4e2d\u6587",
    "\U0001f600 grin",
    "\U00010348",
    "",
    "__proto__",
    "\u2028\u2029",
]
METADATA = {"writer": "test/python/write_safetensors_header.py", "\u00e9\U0001f600": "\U0001f600\u00e9\\\"", "__proto__": "x"}

VARIANTS = {
    "ascii-indented.safetensors": dict(ensure_ascii=True, indent=2),
    "utf8-compact.safetensors": dict(ensure_ascii=False, separators=(",", ":")),
    "ascii-sorted-padded.safetensors": dict(ensure_ascii=True, sort_keys=True, pad=True),
    "utf8-tabs.safetensors": dict(ensure_ascii=False, indent="\t"),
}


def main():
    folder = sys.argv[1]
    out = {}
    for file_name, options in VARIANTS.items():
        options = dict(options)
        pad = options.pop("pad", False)
        header = {"__metadata__": METADATA}
        for i, name in enumerate(NAMES):
            header[name] = {"dtype": "U8", "shape": [1], "data_offsets": [i, i + 1]}
        text = json.dumps(header, **options).encode("utf-8")
        if pad:
            text += b" " * (-(8 + len(text)) % 8)
        with open(os.path.join(folder, file_name), "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            f.write(bytes(range(len(NAMES))))
        out[file_name] = {"names": NAMES, "metadata": METADATA}
    json.dump(out, sys.stdout)


main()
