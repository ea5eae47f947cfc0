"""roundlog-client: record and resume training rounds from Python through ``roundlog serve``.

    from roundlog_client import Client
    client = Client()                      # ROUNDLOG_URL (default http://127.0.0.1:8080), ROUNDLOG_TOKEN
    with client.start_run("my-experiment", create_if_missing=True) as run:
        ...
        run.record_round({"w": w, "b": b}, metrics={"loss": 0.41}, state={"epoch": 3})

Depends on the standard library and NumPy only; PyTorch tensors are taken and returned when
PyTorch is installed, and the ``safetensors`` package is used when it is installed.
"""

from .client import Client, LoadedRound, Run, new_request_id, to_numpy_params, to_torch_params
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors
from .safetensors import BFloat16Bits, bfloat16_to_float32, float32_to_bfloat16
from .sse import ServerEvent

__version__ = "0.1.0"

__all__ = [
    "Client",
    "Run",
    "LoadedRound",
    "ServerEvent",
    "BFloat16Bits",
    "bfloat16_to_float32",
    "float32_to_bfloat16",
    "new_request_id",
    "to_numpy_params",
    "to_torch_params",
] + list(_errors)
