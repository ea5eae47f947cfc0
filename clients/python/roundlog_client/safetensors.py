"""A safetensors writer and reader in NumPy alone (Hugging Face's published layout).

    u64 little-endian N | N bytes of UTF-8 JSON header | byte buffer
    header = {"__metadata__": {str: str} (optional),
              "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}

Offsets are relative to the buffer; the tensors tile it exactly (no hole, overlap or trailing
byte); elements are little-endian and row-major.

Dtypes (safetensors name: NumPy dtype): F64 float64, F32 float32, F16 float16, BF16 (see below),
I64 int64, I32 int32, I16 int16, I8 int8, U64 uint64, U32 uint32, U16 uint16, U8 uint8, BOOL bool
(one byte, 0 or 1).

bfloat16: NumPy has no bfloat16 dtype. A BF16 tensor is read as a `BFloat16Bits` array: an
``np.ndarray`` subclass of dtype uint16 holding the raw bits (the high half of a float32), so a
round trip is bit for bit and the writer knows to write it back as BF16 (a plain uint16 array is
written as U16). ``bits.to_float32()`` widens it exactly; ``float32_to_bfloat16(values)`` rounds
float32 values to the nearest bfloat16 (ties to even) as bits. An array of the ``ml_dtypes``
bfloat16 dtype is written as BF16 too. Arithmetic on a `BFloat16Bits` array works on the bits, not
the values: widen first.

The writer is deterministic and writes the same bytes as roundlog's own encoder for the same
tensors: tensors ordered by element size (largest first), then by name in UTF-16 code-unit order;
compact JSON; the header padded with spaces so the buffer starts at a multiple of 8 bytes (every
tensor then lies at a multiple of its element size). So the same parameters have the same
content address (SHA-256) whether Python or TypeScript wrote them.

When the ``safetensors`` package is installed, `dumps_chunks` writes with ``safetensors.numpy``
for sets it can hold (not BF16: it has no bfloat16), unless the environment variable
``ROUNDLOG_CLIENT_SAFETENSORS=builtin`` asks for the built-in writer; its bytes may order the
tensors differently (same tensors, another content address). Reading always uses the built-in
reader here: it checks untrusted bytes as roundlog does and returns BF16 as `BFloat16Bits`.
"""

import json
import os
import struct

import numpy as np

from .errors import CorruptPayloadError, InvalidTensorError

__all__ = [
    "BFloat16Bits",
    "DTYPES",
    "dumps",
    "dumps_chunks",
    "loads",
    "load_file",
    "save_file",
    "bfloat16_to_float32",
    "float32_to_bfloat16",
    "safetensors_dtype",
]

METADATA_KEY = "__metadata__"
_LENGTH_BYTES = 8
_ALIGNMENT = 8

#: safetensors dtype name -> little-endian NumPy dtype of its elements (BF16: its uint16 bits).
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

_BY_KIND = {
    ("f", 8): "F64",
    ("f", 4): "F32",
    ("f", 2): "F16",
    ("i", 8): "I64",
    ("i", 4): "I32",
    ("i", 2): "I16",
    ("i", 1): "I8",
    ("u", 8): "U64",
    ("u", 4): "U32",
    ("u", 2): "U16",
    ("u", 1): "U8",
    ("b", 1): "BOOL",
}


class BFloat16Bits(np.ndarray):
    """bfloat16 tensor as its raw bits: dtype uint16, any shape. Written back as BF16.

    Make one with ``bits.view(BFloat16Bits)`` (bits: a uint16 array) or `float32_to_bfloat16`.
    """

    def to_float32(self):
        """The exact float32 values (a plain ndarray of the same shape)."""
        return bfloat16_to_float32(self)


def bfloat16_to_float32(bits):
    """bfloat16 bits (uint16 array, any shape) -> float32 array of the same shape, exactly."""
    raw = np.asarray(bits)
    if raw.dtype != np.uint16:
        raise InvalidTensorError("bfloat16 bits must be uint16, not %s" % raw.dtype, fields={"dtype": str(raw.dtype)})
    return (raw.astype(np.uint32) << 16).view(np.float32)


def float32_to_bfloat16(values):
    """Values (any float array, any shape) -> `BFloat16Bits` of the same shape: each value
    converted to float32, then rounded to the nearest bfloat16, ties to even; NaN stays NaN."""
    as32 = np.ascontiguousarray(values, dtype=np.float32)
    bits = as32.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(as32)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x0040).astype(np.uint16)  # quiet NaN, sign kept
    return rounded.view(BFloat16Bits)


def safetensors_dtype(array, name="tensor"):
    """The safetensors dtype name of a NumPy array (``"F32"``...). Raises `InvalidTensorError`
    for dtypes the format does not hold (object, complex, strings, datetimes, structured)."""
    if isinstance(array, BFloat16Bits):
        if array.dtype != np.uint16:
            raise InvalidTensorError(
                "tensor %r is BFloat16Bits of dtype %s: it must hold uint16 bits (view a uint16 array, or use "
                "float32_to_bfloat16)" % (name, array.dtype),
                fields={"name": name, "dtype": str(array.dtype)},
            )
        return "BF16"
    dtype = array.dtype
    if dtype.name == "bfloat16":  # ml_dtypes
        return "BF16"
    found = _BY_KIND.get((dtype.kind, dtype.itemsize))
    if found is None or dtype.fields is not None or dtype.subdtype is not None:
        raise InvalidTensorError(
            "tensor %r has dtype %s, which safetensors does not hold (it holds float64/32/16, bfloat16, "
            "int64/32/16/8, uint64/32/16/8 and bool)" % (name, dtype),
            fields={"name": name, "dtype": str(dtype)},
        )
    return found


def _as_tensor(name, value):
    """(safetensors dtype, contiguous little-endian ndarray) of one parameter."""
    if not isinstance(name, str):
        raise InvalidTensorError("tensor names must be strings, not %r" % (name,), fields={"name": repr(name)})
    if name == METADATA_KEY:
        raise InvalidTensorError(
            "a tensor must not be named %s (the format's metadata key)" % METADATA_KEY, fields={"name": name}
        )
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise InvalidTensorError(
            "tensor %r is a %s, not a NumPy array (pass np.asarray(...), or torch tensors through "
            "record_round, which converts them)" % (name, type(value).__name__),
            fields={"name": name, "type": type(value).__name__},
        )
    dtype = safetensors_dtype(value, name)
    if not value.flags.c_contiguous:
        raise InvalidTensorError(
            "tensor %r is not C-contiguous (a transposed or strided view, strides %s): pass "
            "np.ascontiguousarray(...) so the bytes written are the ones meant" % (name, value.strides),
            fields={"name": name, "shape": list(value.shape)},
        )
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))
    return dtype, value


def _name_key(name):
    # UTF-16 code-unit order, as JavaScript compares strings.
    return name.encode("utf-16-be", "surrogatepass")


def _js_object_order(keys):
    # JavaScript objects list integer-like keys ("0", "17") first, ascending, then the rest in
    # insertion order: roundlog's JSON.stringify writes the header in that order.
    def is_index(key):
        return key.isdigit() and key.isascii() and (key == "0" or key[0] != "0") and int(key) < 2**32 - 1

    indices = sorted((k for k in keys if is_index(k)), key=int)
    return indices + [k for k in keys if not is_index(k)]


def _builtin_chunks(tensors, metadata):
    entries = []
    for name, value in tensors.items():
        dtype, array = _as_tensor(name, value)
        entries.append((name, dtype, array))
    entries.sort(key=lambda e: (-DTYPES[e[1]].itemsize, _name_key(e[0])))
    header = {}
    if metadata is not None:
        header[METADATA_KEY] = dict(metadata)
    chunks = []
    offset = 0
    for name, dtype, array in entries:
        size = array.nbytes
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + size]}
        if size:
            chunks.append(memoryview(array.reshape(-1).view(np.uint8)))
        offset += size
    ordered = {key: header[key] for key in _js_object_order(list(header))}
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8", "surrogatepass"
    )
    padded = -(-(_LENGTH_BYTES + len(text)) // _ALIGNMENT) * _ALIGNMENT - _LENGTH_BYTES
    head = struct.pack("<Q", padded) + text + b" " * (padded - len(text))
    return [head] + chunks, len(head) + offset


def _check_metadata(metadata):
    if metadata is None:
        return
    strings = isinstance(metadata, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    if not strings:
        raise InvalidTensorError("metadata must be a dict of str to str", fields={"name": METADATA_KEY})


def _package():
    if os.environ.get("ROUNDLOG_CLIENT_SAFETENSORS") == "builtin":
        return None
    try:
        import safetensors.numpy as package  # noqa: PLC0415
    except ImportError:
        return None
    return package


def dumps_chunks(tensors, metadata=None):
    """The safetensors file of ``tensors`` as ``(chunks, byte_length)``.

    ``tensors``: a mapping of name (str) to a C-contiguous NumPy array (or NumPy scalar) of a
    dtype in `DTYPES` (or `BFloat16Bits`); ``metadata``: optional dict of str to str, written as
    ``__metadata__``. ``chunks`` is a list of bytes-like objects whose concatenation is the file:
    the length and header, then zero-copy views of the arrays' memory, so the arrays must not
    change until the chunks are written. Raises `InvalidTensorError` (naming the tensor) for a
    name that is not a str or is ``__metadata__``, a value that is not an array, an object,
    complex or string dtype, or an array that is not C-contiguous.
    """
    _check_metadata(metadata)
    package = _package()
    if package is not None:
        prepared = {}
        for name, value in tensors.items():
            dtype, array = _as_tensor(name, value)
            if dtype == "BF16":
                break
            prepared[name] = array
        else:
            data = package.save(prepared, metadata=metadata)
            return [data], len(data)
    return _builtin_chunks(tensors, metadata)


def dumps(tensors, metadata=None):
    """The safetensors file of ``tensors`` as one ``bytes`` (see `dumps_chunks`)."""
    chunks, _ = dumps_chunks(tensors, metadata)
    return b"".join(bytes(c) if isinstance(c, memoryview) else c for c in chunks)


def loads(data, source="safetensors bytes", with_metadata=False):
    """The tensors of a safetensors file: a dict name -> ndarray, in file order.

    ``data``: the file's bytes. A ``bytearray`` (or writable buffer) gives writable arrays that
    share its memory (no copy); ``bytes`` gives read-only ones. BF16 tensors come back as
    `BFloat16Bits`, BOOL as ``np.bool_``, every other dtype as its little-endian NumPy dtype, with
    the header's shape (``[]`` is a 0-d array). With ``with_metadata=True`` returns
    ``(tensors, metadata)``.

    The bytes are treated as untrusted: raises `CorruptPayloadError` naming ``source`` and the
    fault (header length past the end, header not a JSON object or not UTF-8, a name given twice,
    unknown dtype, bad shape, offsets that do not match dtype x shape, overlap, hole, trailing
    bytes, metadata that is not strings, a bool byte other than 0 or 1), before allocating anything.
    """
    view = memoryview(data).cast("B")
    size = len(view)

    def corrupt(reason):
        return CorruptPayloadError("%s: %s" % (source, reason), fields={"source": source})

    if size < _LENGTH_BYTES:
        raise corrupt("%d bytes is shorter than the 8-byte header length" % size)
    (length,) = struct.unpack("<Q", view[:_LENGTH_BYTES])
    if length > size - _LENGTH_BYTES:
        raise corrupt("the header length %d (bytes 0..8) runs past the end of the %d-byte file" % (length, size))
    start = _LENGTH_BYTES + length
    raw = bytes(view[_LENGTH_BYTES:start])
    if raw[:1] != b"{":
        raise corrupt('the header (bytes 8..%d) does not start with "{"' % start)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise corrupt("the header (bytes 8..%d) is not UTF-8 (%s)" % (start, error)) from None

    def no_repeats(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise corrupt("the header names %s more than once" % json.dumps(key))
            seen[key] = value
        return seen

    try:
        header = json.loads(text, object_pairs_hook=no_repeats)
    except ValueError as error:
        raise corrupt("the header (bytes 8..%d) is not JSON (%s)" % (start, error)) from None
    if not isinstance(header, dict):
        raise corrupt("the header is not a JSON object")
    metadata = header.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise corrupt("%s is not an object of strings" % METADATA_KEY)
    buffer_bytes = size - start
    entries = []
    for name, info in header.items():
        label = "tensor %s" % json.dumps(name)
        if not isinstance(info, dict):
            raise corrupt("%s is not an object {dtype, shape, data_offsets}" % label)
        unknown = set(info) - {"dtype", "shape", "data_offsets"}
        if unknown:
            raise corrupt("%s has an unknown field %s" % (label, json.dumps(sorted(unknown)[0])))
        dtype = info.get("dtype")
        if dtype not in DTYPES:
            raise corrupt("%s has dtype %s, which this reader does not read (it reads %s)" % (
                label, json.dumps(dtype), ", ".join(DTYPES)))
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise corrupt("%s has shape %s, not a list of non-negative integers" % (label, json.dumps(shape)))
        offsets = info.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(type(o) is int and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]
        ):
            raise corrupt("%s has data_offsets %s, not [begin, end] with 0 <= begin <= end" % (
                label, json.dumps(offsets)))
        begin, end = offsets
        if end > buffer_bytes:
            raise corrupt("%s has data_offsets [%d, %d] past the end of the %d-byte buffer" % (
                label, begin, end, buffer_bytes))
        count = 1
        for d in shape:
            count *= d
        needed = count * DTYPES[dtype].itemsize
        if needed != end - begin:
            raise corrupt("%s has %d bytes (data_offsets [%d, %d]) where shape %s of %s needs %d" % (
                label, end - begin, begin, end, json.dumps(shape), dtype, needed))
        entries.append((begin, end, name, dtype, shape))
    entries.sort(key=lambda e: (e[0], e[1]))
    covered = 0
    previous = None
    for begin, end, name, _, _ in entries:
        if begin < covered:
            raise corrupt("tensors %s (buffer bytes %d..%d) and %s (%d..%d) overlap" % (
                json.dumps(previous[2]), previous[0], previous[1], json.dumps(name), begin, end))
        if begin > covered:
            raise corrupt("buffer bytes %d..%d belong to no tensor" % (covered, begin))
        covered = end
        previous = (begin, end, name)
    if covered != buffer_bytes:
        raise corrupt("%d bytes follow the last tensor (buffer bytes %d..%d)" % (
            buffer_bytes - covered, covered, buffer_bytes))
    tensors = {}
    for begin, end, name, dtype, shape in entries:
        element = DTYPES[dtype]
        if dtype == "BOOL":
            as_bytes = np.frombuffer(view, dtype=np.uint8, count=end - begin, offset=start + begin)
            bad = np.flatnonzero(as_bytes > 1)
            if bad.size:
                index = int(bad[0])
                raise corrupt("bool tensor %s has byte %d at element %d (file byte %d); a bool is 0 or 1" % (
                    json.dumps(name), int(as_bytes[index]), index, start + begin + index))
        array = np.frombuffer(view, dtype=element, count=(end - begin) // element.itemsize, offset=start + begin)
        array = array.reshape(shape)
        if dtype == "BF16":
            array = array.view(BFloat16Bits)
        tensors[name] = array
    return (tensors, metadata) if with_metadata else tensors


def save_file(tensors, path, metadata=None):
    """Writes the safetensors file of ``tensors`` (see `dumps_chunks`) to ``path``."""
    chunks, _ = dumps_chunks(tensors, metadata)
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)


def load_file(path, with_metadata=False):
    """The tensors of the safetensors file at ``path`` (see `loads`; arrays are writable)."""
    with open(path, "rb") as f:
        data = bytearray(f.read())
    return loads(data, source=str(path), with_metadata=with_metadata)
