"""Typed errors of the roundlog client.

Every error is a `RoundlogError` with:

- ``code``: the literal code the server sent in its JSON error body (``{"code", "message", ...}``,
  the table of README "roundlog serve"), or the client's own code for errors raised before or
  without a response (``CONNECTION_FAILED``, ``INVALID_TENSOR``, ``UNRECORDABLE_VALUE``,
  ``CORRUPT_PAYLOAD``, ``TORCH_NOT_INSTALLED``, ``PROTOCOL_ERROR``);
- ``status``: the HTTP status (int), or ``None`` when no response carried the error;
- ``fields``: the error's structured fields (every key of the body but ``code`` and ``message``),
  e.g. ``{"experiment": "Experiment_0003", "expectedRevision": "7", "actualRevision": "9"}``.

The class follows the code when the client knows it (`ERROR_CLASSES`), else the HTTP status
(400 `InvalidRequestError`, 401 `UnauthorizedError`, 404 `NotFoundError`, 409 `ConflictError`,
413 `BodyTooLargeError`, 415 `UnsupportedMediaTypeError`, 503 `ServiceUnavailableError`, other 5xx
`ServerError`), so
``except ConflictError`` also catches a conflict code added to the server later.
"""

import json

__all__ = [
    "RoundlogError",
    "InvalidRequestError",
    "CorruptPayloadError",
    "UnrecordableValueError",
    "InvalidTensorError",
    "UnauthorizedError",
    "NotFoundError",
    "ExperimentNotFoundError",
    "RoundNotFoundError",
    "NoBreakpointError",
    "RoundPrunedError",
    "RoundNotInHistoryError",
    "ConflictError",
    "ConcurrentModificationError",
    "ExperimentRunningError",
    "RunNotOwnedError",
    "ExperimentExistsError",
    "RoundMismatchError",
    "IdempotencyKeyReusedError",
    "BodyTooLargeError",
    "UnsupportedMediaTypeError",
    "ServerError",
    "ServiceUnavailableError",
    "ConnectionFailedError",
    "ProtocolError",
    "TorchNotInstalledError",
    "ERROR_CLASSES",
    "error_from_response",
]


class RoundlogError(Exception):
    """Base of every error the client raises: ``code`` (str), ``status`` (int or None), ``fields`` (dict)."""

    default_code = "ROUNDLOG_ERROR"

    def __init__(self, message, code=None, status=None, fields=None):
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.default_code
        self.status = status
        self.fields = dict(fields or {})

    def __str__(self):
        where = "" if self.status is None else " (HTTP %d)" % self.status
        return "%s%s: %s" % (self.code, where, self.message)

    def __getattr__(self, name):
        # Structured fields read as attributes too: error.experiment, error.actualRevision.
        fields = self.__dict__.get("fields")
        if fields is not None and name in fields:
            return fields[name]
        raise AttributeError(name)


class InvalidRequestError(RoundlogError):
    """HTTP 400: the request was refused as it is (``field`` names what is wrong, when known)."""

    default_code = "INVALID_REQUEST"


class CorruptPayloadError(InvalidRequestError):
    """Bytes that break the safetensors layout (server side: HTTP 400; client side: status None)."""

    default_code = "CORRUPT_PAYLOAD"


class UnrecordableValueError(InvalidRequestError):
    """A metric or state value JSON cannot carry unchanged (NaN, infinity, an integer past 2^53,
    an array, an object that is not a dict...). ``fields["path"]`` names it, e.g. ``state.rng.inc``."""

    default_code = "UNRECORDABLE_VALUE"


class InvalidTensorError(InvalidRequestError):
    """A parameter the client cannot write as a safetensors tensor. ``fields["name"]`` names it."""

    default_code = "INVALID_TENSOR"


class UnauthorizedError(RoundlogError):
    """HTTP 401: the server needs ``Authorization: Bearer <token>`` (``token=`` or ``ROUNDLOG_TOKEN``)."""

    default_code = "UNAUTHORIZED"


class NotFoundError(RoundlogError):
    """HTTP 404: the experiment, round, parameters blob or route does not exist."""

    default_code = "NOT_FOUND"


class ExperimentNotFoundError(NotFoundError):
    default_code = "EXPERIMENT_NOT_FOUND"


class RoundNotFoundError(NotFoundError):
    default_code = "ROUND_NOT_FOUND"


class NoBreakpointError(NotFoundError):
    default_code = "NO_BREAKPOINT"


class RoundPrunedError(NotFoundError):
    default_code = "ROUND_PRUNED"


class RoundNotInHistoryError(NotFoundError):
    default_code = "ROUND_NOT_IN_HISTORY"


class ConflictError(RoundlogError):
    """HTTP 409: the request conflicts with the experiment's current state. Never retried."""

    default_code = "CONFLICT"


class ConcurrentModificationError(ConflictError):
    """Another writer recorded first: fields ``experiment``, ``expectedRevision``, ``actualRevision``."""

    default_code = "CONCURRENT_MODIFICATION"


class ExperimentRunningError(ConflictError):
    """Another live run holds the experiment: fields ``experiment``, ``owner`` ({host, pid, name?})."""

    default_code = "EXPERIMENT_RUNNING"


class RunNotOwnedError(ConflictError):
    """The run this call names is no longer the experiment's run (it was taken over or ended)."""

    default_code = "RUN_NOT_OWNED"


class ExperimentExistsError(ConflictError):
    """``create_experiment(folder=...)`` with a folder that is taken."""

    default_code = "EXPERIMENT_EXISTS"


class RoundMismatchError(ConflictError):
    """Recording round R when the experiment's current round is not R."""

    default_code = "ROUND_MISMATCH"


class IdempotencyKeyReusedError(ConflictError):
    """The same ``requestId`` was sent with different content."""

    default_code = "IDEMPOTENCY_KEY_REUSED"


class BodyTooLargeError(RoundlogError):
    """HTTP 413: the body is over the server's limit (``fields["limitBytes"]``)."""

    default_code = "BODY_TOO_LARGE"


class UnsupportedMediaTypeError(RoundlogError):
    """HTTP 415: the body's Content-Type is not the one the route takes."""

    default_code = "UNSUPPORTED_MEDIA_TYPE"


class ServerError(RoundlogError):
    """HTTP 5xx: the server failed (retried for idempotent requests, then raised)."""

    default_code = "INTERNAL"


class ServiceUnavailableError(ServerError):
    """HTTP 503: the server cannot serve now (``LOG_LOCKED``: another process holds the root's log;
    ``STORE_UNAVAILABLE``; ``CLOSED``: it is shutting down). Retried like any 5xx, then raised."""

    default_code = "SERVICE_UNAVAILABLE"


class ConnectionFailedError(RoundlogError):
    """No response: connection refused, reset or timed out on every attempt.
    Fields ``url``, ``attempts`` and ``reason`` (the last low-level error)."""

    default_code = "CONNECTION_FAILED"


class ProtocolError(RoundlogError):
    """A response the client cannot read (not JSON where JSON is due, a missing field)."""

    default_code = "PROTOCOL_ERROR"


class TorchNotInstalledError(RoundlogError):
    """Torch tensors were asked for (``as_torch=True``) but ``import torch`` fails."""

    default_code = "TORCH_NOT_INSTALLED"


#: The class of each code the server sends (the library's error codes, serve-api.md's table).
ERROR_CLASSES = {
    "INVALID_REQUEST": InvalidRequestError,
    "INVALID_ARGUMENT": InvalidRequestError,
    "INVALID_JSON": InvalidRequestError,
    "CORRUPT_PAYLOAD": CorruptPayloadError,
    "DECODE_LIMIT": InvalidRequestError,
    "UNRECORDABLE_VALUE": UnrecordableValueError,
    "UNSAFE_TENSOR_NAME": InvalidRequestError,
    "UNAUTHORIZED": UnauthorizedError,
    "NOT_FOUND": NotFoundError,
    "EXPERIMENT_NOT_FOUND": ExperimentNotFoundError,
    "ROUND_NOT_FOUND": RoundNotFoundError,
    "NO_BREAKPOINT": NoBreakpointError,
    "ROUND_PRUNED": RoundPrunedError,
    "ROUND_NOT_IN_HISTORY": RoundNotInHistoryError,
    "BLOB_NOT_FOUND": NotFoundError,
    "METRIC_NOT_FOUND": NotFoundError,
    "CONCURRENT_MODIFICATION": ConcurrentModificationError,
    "WRONG_EXPECTED_REVISION": ConcurrentModificationError,
    "EXPERIMENT_RUNNING": ExperimentRunningError,
    "RUN_NOT_OWNED": RunNotOwnedError,
    "EXPERIMENT_EXISTS": ExperimentExistsError,
    "EXPERIMENT_FOLDER_TAKEN": ExperimentExistsError,
    "ROUND_MISMATCH": RoundMismatchError,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyKeyReusedError,
    "BODY_TOO_LARGE": BodyTooLargeError,
    "UNSUPPORTED_MEDIA_TYPE": UnsupportedMediaTypeError,
    "INTERNAL": ServerError,
    "LOG_LOCKED": ServiceUnavailableError,
    "STORE_UNAVAILABLE": ServiceUnavailableError,
    "CLOSED": ServiceUnavailableError,
}

_BY_STATUS = {
    503: ServiceUnavailableError,
    400: InvalidRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: BodyTooLargeError,
    415: UnsupportedMediaTypeError,
}


def error_from_response(status, body, where=""):
    """The typed error for an HTTP error response.

    ``status``: the HTTP status (int >= 400); ``body``: the raw response body (bytes or str);
    ``where``: the request, e.g. ``"POST /v1/experiments/E/rounds"``, added to the message when
    the body has none. A JSON body ``{"code", "message", ...fields}`` gives the code, message and
    fields; any other body gives code ``HTTP_<status>`` and the body's first 200 characters.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body or "")
    parsed = None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        code = parsed["code"]
        message = parsed.get("message")
        if not isinstance(message, str) or not message:
            message = "%s answered %d %s" % (where or "the server", status, code)
        fields = {k: v for k, v in parsed.items() if k not in ("code", "message")}
    else:
        code = "HTTP_%d" % status
        snippet = text.strip()[:200]
        message = "%s answered HTTP %d%s" % (where or "the server", status, (": " + snippet) if snippet else "")
        fields = {}
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        cls = _BY_STATUS.get(status, ServerError if status >= 500 else RoundlogError)
    return cls(message, code=code, status=status, fields=fields)
