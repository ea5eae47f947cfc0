"""The client's PyTorch paths: a torch ``state_dict`` (every dtype a model holds, views that are not
contiguous, tensors that require grad) encoded by the client and decoded back bit for bit;
`to_torch_params` dtypes and shapes; `record_round` and ``load(as_torch=True)`` over the scripted
HTTP server; and, in a process where ``import torch`` fails, `TorchNotInstalledError`.

The PyTorch tests are skipped when PyTorch is not installed (it is optional for the client);
roundlog's CI installs it and fails on such a skip (test/python/client.unit.test.ts)."""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import unittest
import warnings

import numpy as np

from roundlog_client import Client, errors, to_numpy_params, to_torch_params
from roundlog_client import safetensors as st

from .netdouble import NetDouble
from .test_client import E, recording_server

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = unittest.skipUnless(HAVE_TORCH, "PyTorch is not installed")
CLIENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Values whose bits a careless conversion changes: signed zeros, infinities, a NaN with a payload,
# subnormals, the largest finite values.
F32_BITS = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC12345, 0x00000001, 0x807FFFFF, 0x7F7FFFFF,
            0x3F800000, 0xC0490FDB]
F64_BITS = [0x0000000000000000, 0x8000000000000000, 0x7FF0000000000000, 0x7FF8000000ABCDEF, 0x0000000000000001,
            0x7FEFFFFFFFFFFFFF, 0xBFF0000000000000]
F16_BITS = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E01, 0x0001, 0x7BFF, 0x3C00]
BF16_BITS = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC1, 0x0001, 0x7F7F, 0x3F80, 0x4049]


def bits_of(tensor):
    """A tensor's elements as bytes, row-major (bfloat16 through its int16 bits)."""
    import torch

    tensor = tensor.detach().contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    return tensor.numpy().tobytes()


def model():
    """A small module whose state_dict holds float32/float64/float16/bfloat16/int64/bool tensors,
    a 0-d int64 (BatchNorm's num_batches_tracked) and a transposed (non-contiguous) buffer."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(7)
            self.linear = torch.nn.Linear(4, 3)
            self.norm = torch.nn.BatchNorm1d(3)
            self.register_buffer("f32", torch.from_numpy(np.array(F32_BITS, dtype=np.uint32).view(np.float32)))
            self.register_buffer("f64", torch.from_numpy(np.array(F64_BITS, dtype=np.uint64).view(np.float64)))
            self.register_buffer("f16", torch.from_numpy(np.array(F16_BITS, dtype=np.uint16).view(np.float16)))
            self.register_buffer(
                "bf16", torch.from_numpy(np.array(BF16_BITS, dtype=np.uint16).view(np.int16)).view(torch.bfloat16)
            )
            self.register_buffer("bf16_grid", torch.randn(3, 5).to(torch.bfloat16))
            self.register_buffer("i64", torch.tensor([[-(2**63), 2**63 - 1], [0, -1]], dtype=torch.int64))
            self.register_buffer("mask", torch.tensor([[True, False, True], [False, False, True]]))
            self.register_buffer("transposed", torch.arange(12, dtype=torch.float32).reshape(3, 4).t())
            self.register_buffer("bf16_transposed", torch.randn(2, 3).to(torch.bfloat16).t())
            self.register_buffer("empty", torch.zeros(0, 3))

    net = Net()
    net.norm.num_batches_tracked += 3
    return net


@needs_torch
class StateDictRoundTrip(unittest.TestCase):
    def round_trip(self, state):
        """``state`` encoded by the client (as record_round uploads it), read back as torch tensors."""
        data = st.dumps(to_numpy_params(state))
        return data, to_torch_params(st.loads(bytearray(data), source="round trip"))

    def assert_same_tensors(self, back, state):
        self.assertEqual(list(sorted(back)), list(sorted(state)))
        for name, tensor in state.items():
            with self.subTest(name=name):
                self.assertEqual(back[name].dtype, tensor.dtype)
                self.assertEqual(tuple(back[name].shape), tuple(tensor.shape))
                self.assertEqual(bits_of(back[name]), bits_of(tensor))

    def test_a_module_state_dict_comes_back_bit_for_bit(self):
        import torch

        state = model().state_dict()
        self.assertFalse(state["transposed"].is_contiguous())
        self.assertFalse(state["bf16_transposed"].is_contiguous())
        self.assertEqual(state["norm.num_batches_tracked"].shape, ())
        dtypes = {t.dtype for t in state.values()}
        self.assertTrue({torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool}
                        <= dtypes)
        data, back = self.round_trip(state)
        self.assert_same_tensors(back, state)
        self.assertEqual(back["transposed"].tolist(), [[0.0, 4.0, 8.0], [1.0, 5.0, 9.0], [2.0, 6.0, 10.0],
                                                       [3.0, 7.0, 11.0]])
        self.assertTrue(all(t.is_contiguous() for t in back.values()))
        # The header names the safetensors dtypes PyTorch's own reader maps to these torch dtypes.
        (length,) = np.frombuffer(data[:8], dtype="<u8")
        header = json.loads(data[8:8 + int(length)])
        self.assertEqual({name: header[name]["dtype"] for name in ("f32", "f64", "f16", "bf16", "i64", "mask")},
                         {"f32": "F32", "f64": "F64", "f16": "F16", "bf16": "BF16", "i64": "I64", "mask": "BOOL"})
        self.assertEqual(header["norm.num_batches_tracked"], {"dtype": "I64", "shape": [], "data_offsets":
                                                              header["norm.num_batches_tracked"]["data_offsets"]})

    def test_the_special_float_bits_survive(self):
        state = model().state_dict()
        _, back = self.round_trip(state)
        self.assertEqual(np.frombuffer(bits_of(back["f32"]), dtype="<u4").tolist(), F32_BITS)
        self.assertEqual(np.frombuffer(bits_of(back["f64"]), dtype="<u8").tolist(), F64_BITS)
        self.assertEqual(np.frombuffer(bits_of(back["f16"]), dtype="<u2").tolist(), F16_BITS)
        self.assertEqual(np.frombuffer(bits_of(back["bf16"]), dtype="<u2").tolist(), BF16_BITS)

    def test_tensors_that_require_grad_are_recorded_as_their_values(self):
        import torch

        state = model().state_dict(keep_vars=True)
        self.assertTrue(state["linear.weight"].requires_grad)
        grown = torch.ones(2, 2, requires_grad=True) * 3  # not a leaf: it has a grad_fn
        state = dict(state, grown=grown, bf16_grad=torch.ones(3, dtype=torch.bfloat16, requires_grad=True))
        _, back = self.round_trip(state)
        self.assert_same_tensors(back, state)
        self.assertFalse(any(t.requires_grad for t in back.values()))

    def test_the_same_bytes_as_the_numpy_arrays_so_the_same_content_address(self):
        import torch

        state = model().state_dict()
        arrays = {}
        for name, tensor in state.items():
            if tensor.dtype == torch.bfloat16:
                arrays[name] = np.frombuffer(bits_of(tensor), dtype="<u2").reshape(tensor.shape).view(st.BFloat16Bits)
            else:
                arrays[name] = np.array(tensor.numpy(), order="C")  # ascontiguousarray makes 0-d 1-d
        self.assertEqual(st.dumps(to_numpy_params(state)), st.dumps(arrays))

    def test_the_model_loads_what_was_read_back(self):
        state = model().state_dict()
        _, back = self.round_trip(state)
        other = model()
        for tensor in other.state_dict().values():
            tensor.zero_()
        other.load_state_dict(back)
        self.assert_same_tensors(other.state_dict(), state)


@needs_torch
class ToTorchParams(unittest.TestCase):
    def test_dtypes_and_shapes(self):
        import torch

        arrays = {
            "f64": np.arange(6, dtype=np.float64).reshape(2, 3),
            "f32": np.float32(2.5) * np.ones((1, 2, 2), dtype=np.float32),
            "f16": np.array([1.0, -2.0], dtype=np.float16),
            "bf16": st.float32_to_bfloat16(np.array([[1.5, -0.0], [3.0, 65280.0]])),
            "i64": np.array(7, dtype=np.int64),
            "i32": np.array([1, -2], dtype=np.int32),
            "i16": np.array([-3], dtype=np.int16),
            "i8": np.array([-4, 5], dtype=np.int8),
            "u8": np.array([0, 255], dtype=np.uint8),
            "bool": np.array([[True], [False]]),
            "empty": np.zeros((0, 4), dtype=np.float32),
            "empty_bf16": np.zeros(0, dtype=np.uint16).view(st.BFloat16Bits),
        }
        expected = {"f64": torch.float64, "f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
                    "i64": torch.int64, "i32": torch.int32, "i16": torch.int16, "i8": torch.int8, "u8": torch.uint8,
                    "bool": torch.bool, "empty": torch.float32, "empty_bf16": torch.bfloat16}
        tensors = to_torch_params(arrays)
        self.assertEqual(list(tensors), list(arrays))
        for name, array in arrays.items():
            with self.subTest(name=name):
                self.assertIsInstance(tensors[name], torch.Tensor)
                self.assertEqual(tensors[name].dtype, expected[name])
                self.assertEqual(tuple(tensors[name].shape), array.shape)
                self.assertEqual(bits_of(tensors[name]), np.asarray(array).tobytes())
        self.assertEqual(tensors["bf16"].float().tolist(), [[1.5, -0.0], [3.0, 65280.0]])

    def test_every_dtype_roundlog_writes_that_torch_holds_comes_back_bit_for_bit(self):
        fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
        with open(os.path.join(fixtures, "roundlog-every-dtype.json")) as f:
            expected = json.load(f)
        arrays = st.load_file(os.path.join(fixtures, "roundlog-every-dtype.safetensors"))
        unsigned = {name for name, e in expected.items() if e["dtype"] in ("uint16", "uint32", "uint64")}
        self.assertEqual(unsigned, {"u16", "u32", "u64"})
        tensors = to_torch_params({name: a for name, a in arrays.items() if name not in unsigned})
        self.assertEqual(sorted(tensors), sorted(set(expected) - unsigned))
        for name, tensor in tensors.items():
            with self.subTest(name=name):
                self.assertEqual(str(tensor.dtype), "torch." + expected[name]["dtype"])
                self.assertEqual(list(tensor.shape), expected[name]["shape"])
                self.assertEqual(bits_of(tensor).hex(), expected[name]["hex"])

    def test_read_only_arrays_give_writable_tensors_of_their_own(self):
        data = st.dumps({"w": np.arange(3.0), "b": st.float32_to_bfloat16([1.0, 2.0])})
        arrays = st.loads(data)  # bytes: read-only arrays over the file's memory
        self.assertFalse(arrays["w"].flags.writeable)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch warns when it is handed a read-only array
            tensors = to_torch_params(arrays)
        tensors["w"] += 1
        tensors["b"] += 1
        self.assertEqual(arrays["w"].tolist(), [0.0, 1.0, 2.0])
        self.assertEqual(tensors["w"].tolist(), [1.0, 2.0, 3.0])
        self.assertEqual(tensors["b"].float().tolist(), [2.0, 3.0])

    def test_unsigned_dtypes_torch_lacks_raise_an_error_naming_the_tensor(self):
        for dtype in (np.uint16, np.uint32, np.uint64):
            with self.subTest(dtype=dtype.__name__):
                with self.assertRaises(errors.InvalidTensorError) as caught:
                    to_torch_params({"w": np.zeros(2, dtype=np.float32), "counts": np.arange(3, dtype=dtype)})
                self.assertEqual(caught.exception.code, "INVALID_TENSOR")
                self.assertEqual(caught.exception.fields, {"name": "counts", "dtype": np.dtype(dtype).name})
                self.assertIn("'counts'", str(caught.exception))
                self.assertIn("as_torch=False", str(caught.exception))


@needs_torch
class OverHTTP(unittest.TestCase):
    def serve(self, respond):
        double = NetDouble(respond)
        self.addCleanup(double.close)
        return double

    def test_record_round_uploads_the_state_dict_and_load_as_torch_gives_it_back(self):
        state = model().state_dict()
        respond, stored = recording_server([(201, {"round": 0, "revision": "4", "position": "9"})])
        double = self.serve(respond)
        client = Client(double.url, backoff=0, retries=1)
        run = client.start_run("heart", heartbeat=0)
        run.record_round(state, metrics={"loss": 0.5})
        ((sha, body),) = stored.items()
        self.assertEqual(sha, hashlib.sha256(body).hexdigest())
        self.assertEqual(body, st.dumps(to_numpy_params(state)))

        info = {"round": 0, "params": {"sha256": sha, "size": len(body), "encoding": "tensors/safetensors"},
                "state": None, "metrics": {"loss": 0.5}, "revision": "4"}

        def serve_round(request, n):
            if request.path == E + "/rounds/last":
                return 200, info
            if request.path == E + "/rounds/0/params":
                return 200, body, {"Content-Type": "application/octet-stream"}
            return 404, {"code": "ROUND_NOT_FOUND", "message": request.path}

        loaded = Client(self.serve(serve_round).url, backoff=0, retries=1).load("heart", as_torch=True)
        self.assertEqual(loaded.round, 0)
        StateDictRoundTrip.assert_same_tensors(self, loaded.params, state)


WITHOUT_TORCH = r"""
import sys
sys.modules["torch"] = None  # import torch now raises ImportError, as where PyTorch is not installed
import numpy as np
from roundlog_client import Client, errors, to_numpy_params, to_torch_params
from tests.netdouble import NetDouble

out = {}
try:
    to_torch_params({"w": np.arange(3.0)})
except errors.TorchNotInstalledError as error:
    out["to_torch_params"] = [error.code, str(error)]
arrays = {"w": np.arange(3.0)}
out["to_numpy_params"] = sorted(to_numpy_params(arrays))

def respond(request, n):
    if request.path.endswith("/rounds/last"):
        return 200, {"round": 0, "params": {}, "revision": "1"}
    return 200, b"\x02\x00\x00\x00\x00\x00\x00\x00{}", {"Content-Type": "application/octet-stream"}

double = NetDouble(respond)
try:
    Client(double.url, backoff=0, retries=0).load("heart", as_torch=True)
except errors.TorchNotInstalledError as error:
    out["load"] = [error.code, str(error)]
finally:
    double.close()
print(__import__("json").dumps(out))
"""


class WithoutTorch(unittest.TestCase):
    def test_torch_tensors_asked_for_without_torch_say_how_to_install_it(self):
        run = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], cwd=CLIENT_DIR, capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        self.assertEqual(run.returncode, 0, run.stderr)
        out = json.loads(run.stdout)
        self.assertEqual(out["to_numpy_params"], ["w"])
        for where in ("to_torch_params", "load"):
            with self.subTest(where=where):
                code, message = out[where]
                self.assertEqual(code, "TORCH_NOT_INSTALLED")
                self.assertIn("pip install torch", message)
