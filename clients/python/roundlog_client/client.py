"""The client of ``roundlog serve`` (HTTP API v1, base path ``/v1``).

    from roundlog_client import Client
    client = Client("http://127.0.0.1:8080")             # or ROUNDLOG_URL; token: ROUNDLOG_TOKEN
    with client.start_run("mnist", create_if_missing=True) as run:
        params = run.load("last").params if run.round else init()
        for r in range(run.round, 10):
            params = train(params)
            run.record_round(params, metrics={"loss": loss})

Experiments are named by folder name (``Experiment_0003``) or experiment id; the server does not
take an experiment's number.
Revisions and log positions are strings of decimal digits (JSON has no 64-bit integers).
"""

import hashlib
import http.client
import math
import os
import socket
import sys
import threading
import uuid

import numpy as np

from . import safetensors as st
from ._http import Transport
from .errors import (
    ConnectionFailedError,
    CorruptPayloadError,
    ExperimentExistsError,
    ExperimentNotFoundError,
    ExperimentRunningError,
    InvalidTensorError,
    ProtocolError,
    RoundlogError,
    RunNotOwnedError,
    TorchNotInstalledError,
    UnrecordableValueError,
)
from .sse import SSEParser

__all__ = ["Client", "Run", "LoadedRound", "new_request_id", "to_numpy_params", "to_torch_params"]

DEFAULT_URL = "http://127.0.0.1:8080"
_MAX_SAFE_INT = 2**53 - 1


def new_request_id():
    """A fresh request id (``py-`` and 32 hex digits; the contract allows ``[A-Za-z0-9._:-]{1,128}``)."""
    return "py-" + uuid.uuid4().hex


def _quote(segment):
    from urllib.parse import quote

    return quote(str(segment), safe="")


def _json_ready(value, path):
    """``value`` as JSON that comes back unchanged from the log (the server's rule, README
    "Any training loop"): None, bool, finite numbers, str, lists and dicts of str keys. NumPy
    scalars become Python numbers. Raises `UnrecordableValueError` naming ``path`` otherwise."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and value.shape == ():
        value = value.item()
        if isinstance(value, (bool, str)):
            return value
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise UnrecordableValueError(
                "%s is %d, past 2^53 - 1: JSON numbers lose it; record it as a string" % (path, value),
                fields={"path": path},
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnrecordableValueError(
                "%s is %r: JSON has no NaN or infinity; %s" % (
                    path, value,
                    # A metric is a number: None or a string is refused there too.
                    "leave the metric out of this round" if path.startswith("metrics")
                    else "record None or a string",
                ),
                fields={"path": path},
            )
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise UnrecordableValueError(
                    "%s has the key %r, not a string" % (path, key), fields={"path": "%s[%r]" % (path, key)}
                )
            out[key] = _json_ready(item, "%s.%s" % (path, key))
        return out
    if isinstance(value, (list, tuple)):
        return [_json_ready(item, "%s[%d]" % (path, i)) for i, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        raise UnrecordableValueError(
            "%s is an array of shape %s: tensors go in params (or call .tolist() for a small list)"
            % (path, list(value.shape)),
            fields={"path": path},
        )
    raise UnrecordableValueError(
        "%s is a %s, which JSON cannot carry unchanged" % (path, type(value).__name__), fields={"path": path}
    )


def _is_torch_tensor(value):
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _import_torch():
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        raise TorchNotInstalledError(
            "torch tensors were asked for (as_torch=True) but PyTorch is not installed: "
            "pip install torch (or pip install './clients/python[torch]')"
        ) from None
    return torch


def to_numpy_params(params):
    """``params`` (a dict name -> NumPy array, or a torch ``state_dict``: name -> tensor) as a dict
    name -> C-contiguous NumPy array. Torch tensors are detached and copied to the CPU; bfloat16
    ones become `BFloat16Bits` (their bits). Other values pass through for the writer to check."""
    if not hasattr(params, "items"):
        raise TypeError(
            "params must be a dict of name -> array (or a torch state_dict), not %s" % type(params).__name__
        )
    out = {}
    for name, value in params.items():
        if _is_torch_tensor(value):
            torch = _import_torch()
            tensor = value.detach().to("cpu").contiguous()
            if tensor.dtype == torch.bfloat16:
                out[name] = tensor.view(torch.int16).numpy().view(np.uint16).view(st.BFloat16Bits)
            else:
                out[name] = tensor.numpy()
        else:
            out[name] = value
    return out


def to_torch_params(arrays):
    """NumPy arrays (as `loads` returns them) -> torch tensors of the same dtypes and shapes
    (`BFloat16Bits` -> ``torch.bfloat16``). Raises `TorchNotInstalledError` without PyTorch, and
    `InvalidTensorError` naming the tensor and its dtype for a dtype this torch has no tensor of
    (uint16, uint32 and uint64 before torch 2.3): load it as NumPy (``as_torch=False``) instead."""
    torch = _import_torch()
    out = {}
    for name, array in arrays.items():
        if isinstance(array, st.BFloat16Bits):
            out[name] = torch.from_numpy(np.asarray(array).view(np.int16).copy()).view(torch.bfloat16)
            continue
        try:
            out[name] = torch.from_numpy(np.array(array, copy=True))
        except TypeError as error:
            dtype = str(np.asarray(array).dtype)
            raise InvalidTensorError(
                "tensor %r has dtype %s, which torch %s cannot hold (%s): load the round as NumPy "
                "(as_torch=False) and convert it, e.g. .astype(np.int64)" % (name, dtype, torch.__version__, error),
                fields={"name": name, "dtype": dtype},
            ) from None
    return out


class LoadedRound:
    """A recorded round: ``round`` (int, 0-based), ``params`` (dict name -> ndarray, or torch
    tensors), ``state`` (the JSON state recorded with it, or None), ``metrics`` (dict name ->
    float), ``settings`` (the experiment's settings), ``revision`` (str), ``info`` (the server's
    whole JSON description of the round)."""

    def __init__(self, info, params):
        self.info = info
        self.round = info.get("round")
        self.params = params
        self.state = info.get("state")
        self.metrics = info.get("metrics") or {}
        self.settings = info.get("settings")
        self.revision = info.get("revision")

    def __repr__(self):
        return "LoadedRound(round=%r, params=%s, metrics=%r)" % (self.round, sorted(self.params), self.metrics)


class Client:
    """A connection to ``roundlog serve``.

    ``url``: the server's base URL (default: env ``ROUNDLOG_URL``, else ``http://127.0.0.1:8080``);
    ``token``: the bearer token (default: env ``ROUNDLOG_TOKEN``; needed when the server has
    ``--token-file``); ``timeout``: seconds to wait for a connection or a read (float);
    ``retries``: further attempts of a request that is safe to retry (see `_http`), ``backoff``:
    seconds before the first retry (doubled each time, at most ``max_backoff``): by default about
    13 s of retries in all, enough for a server restart.
    """

    def __init__(self, url=None, token=None, timeout=60.0, retries=6, backoff=0.25, max_backoff=5.0):
        url = url or os.environ.get("ROUNDLOG_URL") or DEFAULT_URL
        token = token if token is not None else os.environ.get("ROUNDLOG_TOKEN") or None
        self.url = url
        self._http = Transport(
            url, token=token, timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff
        )

    def __repr__(self):
        return "Client(%r)" % self.url

    # -- plumbing ---------------------------------------------------------------------------

    def _get(self, path, query=None):
        return self._http.request("GET", path, idempotent=True, query=query).json("GET " + path)

    def _post(self, path, body):
        return self._http.request("POST", path, json_body=body, idempotent=True).json("POST " + path)

    def _exp(self, experiment):
        return "/v1/experiments/" + _quote(experiment)

    # -- service ----------------------------------------------------------------------------

    def health(self):
        """``{"status": "ok"}`` when the server is up (raises `ConnectionFailedError` otherwise)."""
        return self._get("/v1/health")

    def version(self):
        """``{"version": "<roundlog version>", "api": 1}``."""
        return self._get("/v1/version")

    # -- experiments ------------------------------------------------------------------------

    def experiments(self):
        """Every experiment, as ``roundlog ls --json`` lists them (a list of dicts)."""
        return self._get("/v1/experiments")["experiments"]

    def experiment(self, experiment):
        """One experiment: ``{experimentId, folder, roundCurrent, revision, status, run, settings, ...}``.
        Raises `ExperimentNotFoundError`."""
        return self._get(self._exp(experiment))

    def create_experiment(self, folder=None, round_limit=None, seed=None, config=None, save_breakpoints=None,
                          request_id=None, retention=None):
        """Creates an experiment; returns ``{"experiment": {experimentId, folder, number, stream},
        "revision": str}``. ``folder``: its folder name (default: the next ``Experiment_NNNN``);
        ``round_limit``: int, the number of rounds it may run; ``seed``: int; ``config``: JSON;
        ``save_breakpoints``: bool; ``retention``: which rounds' parameters are kept (``roundlog gc``'s
        policy, applied as rounds complete), ``{"keepLast": int >= 1, "keepEvery": int >= 1 or None}``.
        Raises `ExperimentExistsError` when ``folder`` is taken. A retry after a lost answer sends
        the same request id (``request_id``, default: a new one per call), so it gets the first
        answer, not `ExperimentExistsError` for the experiment its first attempt created."""
        body = {"requestId": request_id or new_request_id()}
        if folder is not None:
            body["folder"] = folder
        if round_limit is not None:
            body["roundLimit"] = round_limit
        if seed is not None:
            body["seed"] = seed
        if config is not None:
            body["config"] = _json_ready(config, "config")
        if save_breakpoints is not None:
            body["saveBreakpoints"] = bool(save_breakpoints)
        if retention is not None:
            body["retention"] = _json_ready(dict(retention), "retention")
        return self._post("/v1/experiments", body)

    def start_run(self, experiment, create_if_missing=False, owner=None, take_over=False, heartbeat=5.0,
                  settings=None):
        """Starts a run of ``experiment``, or resumes it when it has rounds; returns a `Run` whose
        ``round`` is the number of rounds already committed (0 for a new experiment).

        ``create_if_missing``: create the experiment (folder ``experiment``, with ``settings``:
        keyword arguments of `create_experiment`) when it does not exist. ``owner``: ``{host, pid,
        name}`` recorded as the run's owner (default: this host, this process, the script's name).
        ``take_over``: ``False`` (raise `ExperimentRunningError` when another live run holds the
        experiment), ``True`` (take it over, recorded), or ``"if-dead"`` (take it over only when
        the holder is a process of this host that no longer exists: a crashed run of this
        machine, e.g. after ``kill -9``). ``heartbeat``: seconds between heartbeats, sent by a
        daemon thread (the server counts the run gone after 3 missed ones); 0 or None: no
        heartbeats, and the server's default period is recorded.
        """
        if owner is None:
            name = os.path.basename(sys.argv[0] or "python")
            owner = {"host": socket.gethostname(), "pid": os.getpid(), "name": name}
        body = {"owner": owner, "takeOver": take_over is True}
        if heartbeat and heartbeat > 0:
            body["heartbeatMs"] = max(1, int(round(heartbeat * 1000)))
        path = self._exp(experiment) + "/runs"
        try:
            started = self._post(path, dict(body, requestId=new_request_id()))
        except ExperimentNotFoundError:
            if not create_if_missing:
                raise
            try:
                self.create_experiment(folder=experiment, **(settings or {}))
            except ExperimentExistsError:
                pass  # another process created it first: start a run of it all the same
            started = self._post(path, dict(body, requestId=new_request_id()))
        except ExperimentRunningError as error:
            if take_over != "if-dead" or not _holder_is_dead(error.fields.get("owner")):
                raise
            started = self._post(path, dict(body, takeOver=True, requestId=new_request_id()))
        return Run(self, experiment, started, heartbeat)

    # -- rounds -----------------------------------------------------------------------------

    def load(self, experiment, round="last", as_torch=False):
        """A recorded round of ``experiment`` (``round``: int, 0-based, or ``"last"``) as a
        `LoadedRound`; its params are NumPy arrays (see `safetensors.loads`), or torch tensors with
        ``as_torch=True`` (`TorchNotInstalledError` without PyTorch). Raises
        `ExperimentNotFoundError`, `RoundNotFoundError` (no such round, or none yet),
        `RoundPrunedError`, `CorruptPayloadError` (bytes that do not match their SHA-256)."""
        path = self._exp(experiment) + "/rounds/" + _quote(round)
        info = self._get(path)
        recorded = info.get("round", round)
        params_path = self._exp(experiment) + "/rounds/" + _quote(recorded) + "/params"
        response = self._http.request("GET", params_path, idempotent=True,
                                      headers={"Accept": "application/octet-stream"})
        described = info.get("params") or {}
        if described.get("encoding") in (None, "tensors/safetensors") and described.get("sha256"):
            got = hashlib.sha256(response.body).hexdigest()
            if got != described["sha256"]:
                raise CorruptPayloadError(
                    "the parameters of round %s of %s have SHA-256 %s where the round records %s"
                    % (recorded, experiment, got, described["sha256"]),
                    fields={"experiment": experiment, "round": recorded},
                )
        arrays = st.loads(response.body, source="round %s of %s" % (recorded, experiment))
        return LoadedRound(info, to_torch_params(arrays) if as_torch else arrays)

    def upload_params(self, params):
        """Stores ``params`` (dict name -> ndarray, or a torch state_dict) as a safetensors blob;
        returns ``{sha256, size, encoding, tensors, created}``. Content-addressed, so retried safely
        with no request id: the same bytes are the same blob (``created`` false the second time)."""
        chunks, _ = st.dumps_chunks(to_numpy_params(params))
        return self._http.request(
            "POST", "/v1/params", body=chunks, idempotent=True,
            headers={"Content-Type": "application/octet-stream"},
        ).json("POST /v1/params")

    # -- audit ------------------------------------------------------------------------------

    def history(self, experiment):
        """The experiment's history, as ``roundlog history --json`` prints it."""
        return self._get(self._exp(experiment) + "/history")

    def events(self, experiment):
        """The experiment's audit events, as ``roundlog audit events --json`` prints them."""
        return self._get(self._exp(experiment) + "/events")

    def rounds(self, experiment):
        """The rounds table, as ``roundlog audit rounds --json`` prints it."""
        return self._get(self._exp(experiment) + "/rounds")

    def metric(self, experiment, name):
        """One metric's series: ``{"name", "points": [{"round", "value", ...}], ...}``."""
        return self._get(self._exp(experiment) + "/metrics/" + _quote(name))

    def lineage(self, experiment):
        """The experiment's lineage, as ``roundlog audit lineage --json`` prints it."""
        return self._get(self._exp(experiment) + "/lineage")

    # -- operations -------------------------------------------------------------------------

    def rewind(self, experiment, round, reason=None, expected_revision=None):
        """Rewinds ``experiment`` to ``round`` (later rounds superseded, recorded), as ``roundlog rewind``."""
        body = {"round": round, "requestId": new_request_id()}
        if reason is not None:
            body["reason"] = reason
        if expected_revision is not None:
            body["expectedRevision"] = str(expected_revision)
        return self._post(self._exp(experiment) + "/rewind", body)

    def fork(self, experiment, round, folder=None):
        """A new experiment starting from ``round`` of ``experiment``, as ``roundlog fork``."""
        body = {"round": round, "requestId": new_request_id()}
        if folder is not None:
            body["folder"] = folder
        return self._post(self._exp(experiment) + "/fork", body)

    def replay(self, experiment, round):
        """Replays ``round`` of ``experiment``, as ``roundlog replay``."""
        return self._post(self._exp(experiment) + "/replay", {"round": round, "requestId": new_request_id()})

    def export(self, experiment, round, format="safetensors"):
        """The bytes of ``round`` exported as ``format`` (``"safetensors"`` or ``"npz"``)."""
        return bytes(self._http.request("GET", self._exp(experiment) + "/export", idempotent=True,
                                        query={"round": round, "format": format},
                                        headers={"Accept": "application/octet-stream"}).body)

    # -- live -------------------------------------------------------------------------------

    def follow(self, experiment=None, last_event_id=None, reconnect=True, read_timeout=60.0, max_reconnects=None):
        """Yields the live audit events (`ServerEvent`: ``id`` = log position as a str, ``type``,
        ``data``) of ``experiment`` (all experiments when None), from after ``last_event_id``
        (default: what the server starts with).

        When the connection drops (or nothing, not even the 15 s keep-alive, arrives for
        ``read_timeout`` seconds), it reconnects with ``Last-Event-ID`` set to the last event
        seen, so no event is lost or repeated; the backoff between attempts is the client's and
        resets after an event. ``max_reconnects``: attempts in a row before raising
        `ConnectionFailedError` (default: the client's ``retries``). With ``reconnect=False`` a
        dropped connection ends the generator. Errors (4xx) are raised.
        """
        query = {"experiment": experiment} if experiment is not None else None
        limit = self._http.retries if max_reconnects is None else max_reconnects
        failures = 0
        last_id = last_event_id
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id is not None:
                headers["Last-Event-ID"] = str(last_id)
            conn = None
            try:
                conn, response = self._http.open_stream("/v1/events", query=query, headers=headers,
                                                        timeout=read_timeout)
                parser = SSEParser(last_id)
                while True:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    for event in parser.feed(chunk):
                        last_id = event.id
                        failures = 0
                        yield event
            except (OSError, http.client.HTTPException, ConnectionFailedError) as error:
                reason = error
            else:
                reason = "the server closed the stream"
            finally:
                if conn is not None:
                    conn.close()
            if not reconnect:
                return
            failures += 1
            if failures > limit:
                raise ConnectionFailedError(
                    "following events of %s: %d reconnections failed in a row (%s)" % (experiment, limit, reason),
                    fields={"url": self.url, "attempts": failures, "reason": str(reason), "lastEventId": last_id},
                )
            self._http._sleep(self._http.delay(failures))


def _holder_is_dead(owner):
    """True when ``owner`` ({host, pid}) is a process of this host that does not exist."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Run:
    """A started (or resumed) run of one experiment: the one writer of its rounds.

    Attributes: ``experiment`` (as given to `Client.start_run`), ``run_id`` (str), ``round``
    (int: rounds committed, i.e. the 0-based index of the next round), ``revision`` (str: the
    experiment's revision this run expects; kept up to date by each call), ``resumed`` (bool).

    As a context manager it ends the run on a normal exit and records a failure (with the
    exception's type and message) on an exception, which it lets through. A daemon thread sends
    heartbeats every ``heartbeat`` seconds while the run is open.
    """

    def __init__(self, client, experiment, started, heartbeat=5.0):
        for key in ("runId", "roundCurrent", "revision"):
            if key not in started:
                raise ProtocolError("starting a run of %s: the answer has no %s: %r" % (experiment, key, started))
        self.client = client
        self.experiment = experiment
        self.run_id = started["runId"]
        self.round = int(started["roundCurrent"])
        self.revision = str(started["revision"])
        self.resumed = bool(started.get("resumed", False))
        self._lock = threading.Lock()
        # Held by record_round from the round index it takes to the answer: rounds of one Run go one
        # at a time, whatever threads call it (``_lock`` alone would let two take the same index).
        self._recording = threading.Lock()
        self._stop = threading.Event()
        self._lost = None
        self._closed = False
        self._heartbeat = heartbeat
        self._thread = None
        if heartbeat and heartbeat > 0:
            self._thread = threading.Thread(target=self._beat, name="roundlog-heartbeat-%s" % self.run_id, daemon=True)
            self._thread.start()

    def __repr__(self):
        return "Run(%r, run_id=%r, round=%d, revision=%r)" % (self.experiment, self.run_id, self.round, self.revision)

    def _path(self, tail):
        return self.client._exp(self.experiment) + "/runs/" + _quote(self.run_id) + tail

    def _adopt_revision(self, answer):
        revision = answer.get("revision") if isinstance(answer, dict) else None
        if isinstance(revision, (str, int)) and str(revision).isdigit() and int(revision) >= int(self.revision):
            self.revision = str(revision)

    def _beat(self):
        while not self._stop.wait(self._heartbeat):
            try:
                with self._lock:
                    if self._closed:
                        return
                    answer = self.client._http.request("POST", self._path("/heartbeat"), json_body={},
                                                       idempotent=True).json("heartbeat")
                    self._adopt_revision(answer)
            except (RunNotOwnedError, ExperimentRunningError) as error:
                self._lost = error
                return
            except RoundlogError:
                continue  # the server is away: the next beat tries again

    def _check_open(self, what):
        if self._lost is not None:
            raise self._lost
        if self._closed:
            raise RunNotOwnedError("%s: run %s of %s is closed" % (what, self.run_id, self.experiment),
                                   fields={"experiment": self.experiment, "runId": self.run_id})

    def record_round(self, params, metrics=None, state=None, round=None, breakpoint=None, duration_ms=None):
        """Records one round, durably; returns ``{round, revision, position, breakpoint}``.

        ``params``: dict name -> NumPy array (any shape; dtypes of `safetensors.DTYPES`,
        C-contiguous), or a torch ``state_dict``; uploaded as safetensors (POST /v1/params), then
        referenced by its SHA-256. ``metrics``: dict name -> finite number. ``state``: JSON
        (dicts, lists, str, finite numbers, bool, None; ints within +-2^53) with everything the
        loop needs to continue: epoch, RNG state, optimiser state... ``round``: the 0-based round
        index (default ``self.round``). Sent with the revision this run expects and one request
        id, reused on every retry: a retry after a lost answer returns the first answer.

        Raises `UnrecordableValueError` / `InvalidTensorError` before sending anything;
        `ConcurrentModificationError` (another writer recorded: ``fields`` expectedRevision,
        actualRevision), `RoundMismatchError`, `RunNotOwnedError` (taken over), `ServerError`,
        `ConnectionFailedError` after the bounded retries (the round may or may not be recorded:
        `Client.experiment` says; calling again creates a new request).

        Safe to call from several threads: one record of a Run at a time, each taking the round
        after the last one recorded.
        """
        with self._recording:
            return self._record_round(params, metrics, state, round, breakpoint, duration_ms)

    def _record_round(self, params, metrics, state, round, breakpoint, duration_ms):
        self._check_open("record_round")
        index = self.round if round is None else int(round)
        body = {"round": index, "runId": self.run_id, "requestId": new_request_id()}
        if metrics is not None:
            body["metrics"] = _json_ready(dict(metrics), "metrics")
        if state is not None:
            body["state"] = _json_ready(state, "state")
        if breakpoint is not None:
            body["breakpoint"] = bool(breakpoint)
        if duration_ms is not None:
            body["durationMs"] = duration_ms
        stored = self.client.upload_params(params)
        body["params"] = {"sha256": stored["sha256"]}
        with self._lock:
            self._check_open("record_round")
            body["expectedRevision"] = self.revision
            answer = self.client._http.request(
                "POST", self.client._exp(self.experiment) + "/rounds", json_body=body, idempotent=True,
                headers={"If-Match": '"%s"' % self.revision},
            ).json("POST rounds")
            self._adopt_revision(answer)
            recorded = answer.get("round", index)
            self.round = int(recorded) + 1
        return answer

    def load(self, round="last", as_torch=False):
        """A recorded round of this run's experiment (see `Client.load`)."""
        return self.client.load(self.experiment, round=round, as_torch=as_torch)

    def _close(self, tail, body):
        self._stop.set()
        with self._lock:
            if self._closed:
                return None
            self._closed = True
            answer = self.client._http.request(
                "POST", self._path(tail), json_body=dict(body, requestId=new_request_id()), idempotent=True
            ).json("POST " + tail)
            self._adopt_revision(answer)
            return answer

    def end(self):
        """Ends the run (recorded); returns ``{revision}``. Later calls do nothing and return None."""
        return self._close("/end", {})

    def fail(self, message, code=None):
        """Records the run as failed with ``message`` (str, at most 4000 characters kept) and
        ``code`` (str: the error's code or type; the server's default when None); returns
        ``{revision}``."""
        body = {"message": str(message)[:4000]}
        if code is not None:
            body["code"] = str(code)[:200]
        return self._close("/fail", body)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.end()
        else:
            try:
                self.fail("%s: %s" % (kind.__name__, value), code=kind.__name__)
            except RoundlogError:
                pass  # the original exception matters more
        return False
