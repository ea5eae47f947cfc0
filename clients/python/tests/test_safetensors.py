"""The client's safetensors codec: bit-for-bit round trips of every dtype, byte-identity with
roundlog's own encoder (fixtures written by roundlog's encodeSafetensors), and refusals."""

import json
import os
import struct
import tempfile
import unittest

import numpy as np

from roundlog_client import safetensors as st
from roundlog_client.errors import CorruptPayloadError, InvalidTensorError

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "fixtures", "roundlog-every-dtype.safetensors")
EXPECTED = os.path.join(HERE, "fixtures", "roundlog-every-dtype.json")

NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
         "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16",
         "uint8": "U8", "bool": "BOOL"}


def every_dtype():
    """One tensor of each dtype, with edge values (NaN payloads, -0, subnormals, extremes)."""
    return {
        "f64": np.array([0.0, -0.0, np.pi, -1e308, 5e-324, np.nan], dtype="<f8").reshape(2, 3),
        "f32": np.array([1.5, -2.25, 3.4e38, 1e-45, np.inf, -np.inf], dtype="<f4").reshape(2, 3),
        "f16": np.array([0x3C00, 0x7BFF, 0x0001, 0x8000, 0x7C00, 0x7E01], dtype="<u2").view("<f2").reshape(2, 3),
        "bf16": np.array([0x3F80, 0x7F7F, 0x0001, 0x8000, 0xFF80, 0x7FC1], dtype="<u2")
        .reshape(3, 2)
        .view(st.BFloat16Bits),
        "i64": np.array([-(2**63), -1, 2**63 - 1], dtype="<i8"),
        "i32": np.array([-(2**31), 2**31 - 1], dtype="<i4"),
        "i16": np.array([-32768, 0, 32767], dtype="<i2"),
        "i8": np.array([-128, 0, 127], dtype="i1"),
        "u64": np.array([0, 2**64 - 1], dtype="<u8"),
        "u32": np.array([0, 2**32 - 1], dtype="<u4"),
        "u16": np.array([0, 65535], dtype="<u2"),
        "u8": np.array([[0, 128, 255]], dtype="u1"),
        "flags": np.array([False, True, True, False]),
        "scalar": np.array(7.0, dtype="<f4"),
        "empty": np.zeros((0, 4), dtype="i1"),
    }


def raw_file(header, buffer=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + buffer


class RoundTrip(unittest.TestCase):
    def setUp(self):
        os.environ["ROUNDLOG_CLIENT_SAFETENSORS"] = "builtin"

    def test_every_dtype_round_trips_bit_for_bit(self):
        tensors = every_dtype()
        back = st.loads(st.dumps(tensors))
        self.assertEqual(sorted(back), sorted(tensors))
        for name, array in tensors.items():
            self.assertEqual(back[name].dtype, array.dtype, name)
            self.assertEqual(back[name].shape, array.shape, name)
            self.assertEqual(back[name].tobytes(), array.tobytes(), name)
        self.assertIsInstance(back["bf16"], st.BFloat16Bits)
        self.assertEqual(back["flags"].dtype, np.bool_)

    def test_header_is_padded_so_every_tensor_is_aligned(self):
        data = st.dumps(every_dtype())
        (length,) = struct.unpack("<Q", data[:8])
        self.assertEqual((8 + length) % 8, 0)
        header = json.loads(data[8:8 + length])
        for name, info in header.items():
            size = st.DTYPES[info["dtype"]].itemsize
            self.assertEqual((8 + length + info["data_offsets"][0]) % size, 0, name)

    def test_reads_the_file_roundlog_wrote_bit_for_bit(self):
        with open(EXPECTED) as f:
            expected = json.load(f)
        tensors = st.load_file(FIXTURE)
        self.assertEqual(sorted(tensors), sorted(expected))
        for name, want in expected.items():
            self.assertEqual(st.safetensors_dtype(tensors[name], name), NAMES[want["dtype"]], name)
            self.assertEqual(list(tensors[name].shape), want["shape"], name)
            self.assertEqual(tensors[name].tobytes().hex(), want["hex"], name)

    def test_writes_the_same_bytes_as_roundlog(self):
        with open(FIXTURE, "rb") as f:
            written_by_roundlog = f.read()
        self.assertEqual(st.dumps(st.loads(written_by_roundlog)), written_by_roundlog)

    def test_order_and_json_follow_roundlog_for_awkward_names(self):
        # Integer-like names first (JavaScript object order), then size, then UTF-16 order.
        tensors = {"b": np.zeros(1, "f4"), "10": np.zeros(1, "i1"), "2": np.zeros(1, "f8"),
                   "\U0001f600": np.zeros(1, "f4"), "\uffff": np.zeros(1, "f4"), "é\n\"": np.zeros(1, "f4")}
        data = st.dumps(tensors)
        (length,) = struct.unpack("<Q", data[:8])
        pairs = json.loads(data[8:8 + length], object_pairs_hook=lambda p: p)
        self.assertEqual([k for k, _ in pairs], ["2", "10", "b", "é\n\"", "\U0001f600", "\uffff"])
        offsets = {k: v[2][1] for k, v in pairs}
        # The buffer: by element size, then UTF-16 order (a surrogate pair sorts before U+FFFF).
        self.assertEqual([offsets[k] for k in ["2", "b", "é\n\"", "\U0001f600", "\uffff", "10"]],
                         [[0, 8], [8, 12], [12, 16], [16, 20], [20, 24], [24, 25]])
        self.assertEqual(st.loads(data)["\U0001f600"].tobytes(), b"\0" * 4)

    def test_writable_arrays_from_a_bytearray(self):
        back = st.loads(bytearray(st.dumps({"w": np.arange(3.0)})))
        back["w"] += 1  # a training loop updates loaded parameters in place
        self.assertEqual(back["w"].tolist(), [1.0, 2.0, 3.0])

    def test_big_endian_arrays_are_written_little_endian(self):
        data = st.dumps({"w": np.array([1.0, -2.0], dtype=">f8")})
        self.assertEqual(st.loads(data)["w"].tolist(), [1.0, -2.0])

    def test_metadata_round_trips(self):
        tensors, metadata = st.loads(st.dumps({"w": np.zeros(2)}, metadata={"k": "v"}), with_metadata=True)
        self.assertEqual(metadata, {"k": "v"})
        self.assertEqual(tensors["w"].tolist(), [0.0, 0.0])

    def test_save_file_and_load_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "p.safetensors")
            st.save_file(every_dtype(), path)
            self.assertEqual(st.load_file(path)["i64"].tolist(), [-(2**63), -1, 2**63 - 1])


class BFloat16(unittest.TestCase):
    def test_widening_is_exact_and_rounding_ties_to_even(self):
        bits = st.float32_to_bfloat16(np.array([1.0, 3.140625, -2.0, 1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32))
        self.assertEqual(bits.tolist(), [0x3F80, 0x4049, 0xC000, 0x3F80, 0x3F82])
        self.assertEqual(bits.to_float32().tolist(), [1.0, 3.140625, -2.0, 1.0, 1.0 + 2**-6])

    def test_nan_stays_nan(self):
        bits = st.float32_to_bfloat16(np.array([np.nan, -np.nan], dtype=np.float32))
        self.assertTrue(np.isnan(st.bfloat16_to_float32(bits)).all())

    def test_plain_uint16_is_u16_and_bits_are_bf16(self):
        raw = np.array([1, 2], dtype=np.uint16)
        self.assertEqual(st.safetensors_dtype(raw), "U16")
        self.assertEqual(st.safetensors_dtype(raw.view(st.BFloat16Bits)), "BF16")

    def test_bits_of_another_dtype_are_refused(self):
        with self.assertRaises(InvalidTensorError) as caught:
            st.dumps({"x": np.zeros(2, np.float32).view(st.BFloat16Bits)})
        self.assertEqual(caught.exception.fields["name"], "x")


class Refusals(unittest.TestCase):
    def test_non_contiguous_array_is_refused_naming_it(self):
        with self.assertRaises(InvalidTensorError) as caught:
            st.dumps({"layer.w": np.zeros((3, 4)).T})
        self.assertIn("layer.w", str(caught.exception))
        self.assertIn("ascontiguousarray", str(caught.exception))
        self.assertEqual(caught.exception.code, "INVALID_TENSOR")

    def test_object_complex_and_string_arrays_are_refused(self):
        for value in (np.array([1, "a"], dtype=object), np.zeros(2, np.complex64), np.array(["ab"])):
            with self.assertRaises(InvalidTensorError) as caught:
                st.dumps({"x": value})
            self.assertEqual(caught.exception.fields["dtype"], str(value.dtype))

    def test_lists_metadata_name_and_non_str_names_are_refused(self):
        for tensors in ({"x": [1.0, 2.0]}, {"__metadata__": np.zeros(1)}, {3: np.zeros(1)}):
            with self.assertRaises(InvalidTensorError):
                st.dumps(tensors)

    def assertCorrupt(self, data, fragment):
        with self.assertRaises(CorruptPayloadError) as caught:
            st.loads(data, source="test file")
        self.assertIn(fragment, str(caught.exception))
        self.assertIn("test file", str(caught.exception))
        return caught.exception

    def test_hostile_files_are_refused_naming_the_fault(self):
        good = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        self.assertCorrupt(b"\1\2", "shorter than the 8-byte")
        self.assertCorrupt(struct.pack("<Q", 1000) + b"{}", "runs past the end")
        self.assertCorrupt(struct.pack("<Q", 2) + b"[]", 'does not start with "{"')
        self.assertCorrupt(struct.pack("<Q", 3) + b"{\xff}", "not UTF-8")
        self.assertCorrupt(struct.pack("<Q", 2) + b"{x", "not JSON")
        entry = b'{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
        text = b'{"a":' + entry + b',"a":' + entry + b"}"
        self.assertCorrupt(struct.pack("<Q", len(text)) + text + b"\0" * 4, "more than once")
        self.assertCorrupt(raw_file({"a": dict(good, dtype="C64")}, b"\0" * 8), "dtype")
        self.assertCorrupt(raw_file({"a": dict(good, shape=[-2])}, b"\0" * 8), "shape")
        self.assertCorrupt(raw_file({"a": dict(good, shape=[3])}, b"\0" * 8), "needs 12")
        self.assertCorrupt(raw_file({"a": dict(good, data_offsets=[0, 16])}, b"\0" * 8), "past the end")
        self.assertCorrupt(raw_file({"a": good}, b"\0" * 12), "4 bytes follow the last tensor")
        self.assertCorrupt(raw_file({"a": good, "b": dict(good, data_offsets=[4, 12])}, b"\0" * 12), "overlap")
        self.assertCorrupt(raw_file({"a": dict(good, data_offsets=[4, 12])}, b"\0" * 12), "belong to no tensor")
        self.assertCorrupt(raw_file({"a": dict(good, extra=1)}, b"\0" * 8), "unknown field")
        self.assertCorrupt(raw_file({"__metadata__": {"k": 1}}), "__metadata__")
        self.assertCorrupt(raw_file({"f": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}}, b"\0\1\2"),
                           "byte 2 at element 2")


@unittest.skipIf(__import__("importlib").util.find_spec("safetensors") is None, "the safetensors package is optional")
class WithThePackage(unittest.TestCase):
    def test_package_bytes_read_back_the_same(self):
        os.environ.pop("ROUNDLOG_CLIENT_SAFETENSORS", None)
        tensors = {k: v for k, v in every_dtype().items() if k != "bf16"}
        back = st.loads(st.dumps(tensors))
        for name, array in tensors.items():
            self.assertEqual(back[name].tobytes(), array.tobytes(), name)


if __name__ == "__main__":
    unittest.main()
