"""The client over a scripted local HTTP server (tests/netdouble.py): which requests are retried
and how (same request id, same expected revision), which are not, the run's lifecycle, loading,
and following events across a dropped connection."""

import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import unittest

import numpy as np

from roundlog_client import Client, errors
from roundlog_client import safetensors as st
from roundlog_client.client import _json_ready

from .netdouble import CUT, DROP, NetDouble

E = "/v1/experiments/heart"
STARTED = {"runId": "run-1", "roundCurrent": 0, "revision": "3", "resumed": False}


def client_for(double, **options):
    options.setdefault("backoff", 0)
    options.setdefault("retries", 3)
    return Client(double.url, **options)


class Base(unittest.TestCase):
    def serve(self, respond):
        double = NetDouble(respond)
        self.addCleanup(double.close)
        return double


def recording_server(rounds_answers, params_answers=None):
    """A respond function: runs start, params stored, rounds answered from ``rounds_answers``
    (a list indexed by attempt; the last repeats)."""
    stored = {}

    def respond(request, n):
        if request.path == E + "/runs":
            return 201, STARTED
        if request.path == "/v1/params":
            if params_answers and n < len(params_answers) and params_answers[n] is DROP:
                return DROP
            digest = hashlib.sha256(request.body).hexdigest()
            stored[digest] = request.body
            return 201, {"sha256": digest, "size": len(request.body), "encoding": "tensors/safetensors", "tensors": {}}
        if request.path == E + "/rounds":
            return rounds_answers[min(n, len(rounds_answers) - 1)]
        if request.path.startswith(E + "/runs/run-1/"):
            return 200, {"revision": "3"}
        return 404, {"code": "NOT_FOUND", "message": request.path}

    return respond, stored


class Retries(Base):
    def test_a_get_is_retried_after_a_503_and_succeeds(self):
        double = self.serve(lambda r, n: (503, {"code": "STORE_UNAVAILABLE", "message": "busy"}) if n == 0
                            else (200, {"experiments": [{"folder": "Experiment_0000"}]}))
        self.assertEqual(client_for(double).experiments(), [{"folder": "Experiment_0000"}])
        self.assertEqual(len(double.to("GET", "/v1/experiments")), 2)

    def test_retries_are_bounded_and_the_last_5xx_is_raised(self):
        double = self.serve(lambda r, n: (500, {"code": "INTERNAL", "message": "broken"}))
        with self.assertRaises(errors.ServerError) as caught:
            client_for(double, retries=2).experiments()
        self.assertEqual(len(double.to("GET", "/v1/experiments")), 3)
        self.assertEqual(caught.exception.fields["attempts"], 3)

    def test_a_refused_connection_is_retried_then_raised_typed(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        sleeps = []
        client = Client("http://127.0.0.1:%d" % port, retries=3, backoff=0.5, max_backoff=1.0)
        client._http._sleep = sleeps.append
        with self.assertRaises(errors.ConnectionFailedError) as caught:
            client.health()
        self.assertEqual(caught.exception.fields["attempts"], 4)
        self.assertEqual(len(sleeps), 3)
        self.assertTrue(0.5 <= sleeps[0] <= 0.55 and 1.0 <= sleeps[1] <= 1.1 and 1.0 <= sleeps[2] <= 1.1, sleeps)

    def test_a_lost_answer_to_record_round_is_retried_with_the_same_request_id_and_revision(self):
        params = {"w": np.arange(4.0)}
        ok = (201, {"round": 0, "revision": "4", "position": "17", "breakpoint": None})
        respond, stored = recording_server([DROP, ok], params_answers=[DROP])
        double = self.serve(respond)
        run = client_for(double).start_run("heart", heartbeat=0)
        answer = run.record_round(params, metrics={"loss": 0.5}, state={"epoch": 1})
        self.assertEqual(answer["position"], "17")
        uploads = double.to("POST", "/v1/params")
        self.assertEqual(len(uploads), 2)
        self.assertEqual(uploads[0].body, uploads[1].body)
        # The server reads no Idempotency-Key: an upload is content-addressed, a round's request id is a body field.
        for request in double.requests:
            self.assertNotIn("idempotency-key", [name.lower() for name in request.headers.keys()])
        self.assertEqual(st.loads(uploads[1].body)["w"].tolist(), [0.0, 1.0, 2.0, 3.0])
        first, second = [r.json() for r in double.to("POST", E + "/rounds")]
        self.assertEqual(first, second)
        self.assertEqual(first["requestId"], second["requestId"])
        self.assertEqual(first["expectedRevision"], "3")
        self.assertEqual(first["params"]["sha256"], hashlib.sha256(uploads[0].body).hexdigest())
        self.assertEqual((first["round"], first["runId"], first["metrics"], first["state"]),
                         (0, "run-1", {"loss": 0.5}, {"epoch": 1}))
        self.assertEqual(double.to("POST", E + "/rounds")[0].headers["If-Match"], '"3"')
        self.assertEqual((run.round, run.revision), (1, "4"))
        self.assertIn(first["params"]["sha256"], stored)

    def test_the_next_round_gets_a_new_request_id_and_the_new_revision(self):
        respond, _ = recording_server([(201, {"round": 0, "revision": "4"}), (201, {"round": 1, "revision": "5"})])
        double = self.serve(respond)
        run = client_for(double).start_run("heart", heartbeat=0)
        run.record_round({"w": np.zeros(2)})
        run.record_round({"w": np.ones(2)})
        first, second = [r.json() for r in double.to("POST", E + "/rounds")]
        self.assertNotEqual(first["requestId"], second["requestId"])
        self.assertEqual((second["round"], second["expectedRevision"]), (1, "4"))
        self.assertEqual((run.round, run.revision), (2, "5"))

    def test_a_conflict_is_never_retried(self):
        conflict = (409, {"code": "CONCURRENT_MODIFICATION", "message": "heart moved on", "experiment": "heart",
                          "expectedRevision": "3", "actualRevision": "5"})
        respond, _ = recording_server([conflict])
        double = self.serve(respond)
        run = client_for(double).start_run("heart", heartbeat=0)
        with self.assertRaises(errors.ConcurrentModificationError) as caught:
            run.record_round({"w": np.zeros(2)})
        self.assertEqual(len(double.to("POST", E + "/rounds")), 1)
        self.assertEqual(caught.exception.fields["actualRevision"], "5")
        self.assertEqual(caught.exception.status, 409)
        self.assertEqual(run.round, 0)

    def test_a_400_is_never_retried(self):
        double = self.serve(lambda r, n: (400, {"code": "INVALID_REQUEST", "message": "bad", "field": "roundLimit"}))
        with self.assertRaises(errors.InvalidRequestError) as caught:
            client_for(double).create_experiment(round_limit=-1)
        self.assertEqual(caught.exception.fields["field"], "roundLimit")
        self.assertEqual(len(double.to("POST", "/v1/experiments")), 1)

    def test_an_answer_sent_before_the_body_is_read_is_raised_not_retried(self):
        # A server over its body limit answers 413 at once and closes: the client's send breaks,
        # the answer is there to read.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        self.addCleanup(listener.close)
        accepted = []

        def answer_early():
            conn, _ = listener.accept()
            accepted.append(conn)
            conn.recv(4096)
            body = b'{"code":"BODY_TOO_LARGE","message":"over 1000 bytes","limitBytes":1000}'
            conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            conn.shutdown(socket.SHUT_WR)
            conn.close()

        thread = threading.Thread(target=answer_early, daemon=True)
        thread.start()
        client = Client("http://127.0.0.1:%d" % listener.getsockname()[1], retries=3, backoff=0)
        with self.assertRaises(errors.BodyTooLargeError) as caught:
            client.upload_params({"w": np.zeros(8 << 20)})
        self.assertEqual(caught.exception.fields["limitBytes"], 1000)
        thread.join(10)
        self.assertEqual(len(accepted), 1)

    def test_create_experiment_keeps_its_request_id_across_retries(self):
        double = self.serve(lambda r, n: DROP if n == 0 else (201, {"experiment": {"folder": "a"}, "revision": "0"}))
        client_for(double).create_experiment(folder="a", round_limit=10, seed=1, config={"lr": 0.1})
        first, second = [r.json() for r in double.to("POST", "/v1/experiments")]
        self.assertEqual(first, second)
        self.assertEqual(first, {"requestId": first["requestId"], "folder": "a", "roundLimit": 10, "seed": 1,
                                 "config": {"lr": 0.1}})


class Values(Base):
    def test_unrecordable_values_are_refused_before_anything_is_sent(self):
        respond, _ = recording_server([(201, {"round": 0, "revision": "4"})])
        double = self.serve(respond)
        run = client_for(double).start_run("heart", heartbeat=0)
        for kwargs, path in [({"metrics": {"loss": float("nan")}}, "metrics.loss"),
                             ({"state": {"rng": {"inc": 2**64}}}, "state.rng.inc"),
                             ({"state": {"m": np.zeros(2)}}, "state.m"),
                             ({"state": [1, {"x": object()}]}, "state[1].x")]:
            with self.assertRaises(errors.UnrecordableValueError) as caught:
                run.record_round({"w": np.zeros(1)}, **kwargs)
            self.assertEqual(caught.exception.fields["path"], path)
        with self.assertRaises(errors.InvalidTensorError):
            run.record_round({"w": np.zeros((2, 2)).T})
        self.assertEqual(double.to("POST", "/v1/params"), [])
        self.assertEqual(double.to("POST", E + "/rounds"), [])

    def test_numpy_scalars_become_json_numbers(self):
        self.assertEqual(_json_ready({"a": np.float32(0.5), "b": np.int64(3), "c": np.bool_(True), "d": (1, 2)}, "s"),
                         {"a": 0.5, "b": 3, "c": True, "d": [1, 2]})


class Lifecycle(Base):
    def test_token_and_url_come_from_the_environment(self):
        double = self.serve(lambda r, n: (200, {"status": "ok"}))
        saved = {k: os.environ.get(k) for k in ("ROUNDLOG_URL", "ROUNDLOG_TOKEN")}
        os.environ.update(ROUNDLOG_URL=double.url, ROUNDLOG_TOKEN="s3cret")
        try:
            Client().health()
            Client(token="").health()
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        first, second = double.to("GET", "/v1/health")
        self.assertEqual(first.headers["Authorization"], "Bearer s3cret")
        self.assertNotIn("Authorization", second.headers)

    def test_the_context_manager_ends_or_fails_the_run(self):
        respond, _ = recording_server([(201, {"round": 0, "revision": "4"})])
        double = self.serve(respond)
        client = client_for(double)
        with client.start_run("heart", heartbeat=0) as run:
            run.record_round({"w": np.zeros(1)})
        self.assertEqual(len(double.to("POST", E + "/runs/run-1/end")), 1)
        with self.assertRaises(ZeroDivisionError):
            with client.start_run("heart", heartbeat=0):
                1 / 0
        (failed,) = double.to("POST", E + "/runs/run-1/fail")
        self.assertEqual(failed.json()["code"], "ZeroDivisionError")
        self.assertIn("ZeroDivisionError: division by zero", failed.json()["message"])
        self.assertNotIn("heartbeatMs", double.to("POST", E + "/runs")[0].json())  # heartbeat=0: none
        self.assertEqual(len(double.to("POST", E + "/runs/run-1/end")), 1)

    def test_start_run_sends_the_owner_and_creates_a_missing_experiment(self):
        created = []

        def respond(request, n):
            if request.path == "/v1/experiments":
                created.append(request.json())
                return 201, {"experiment": {"folder": "heart"}, "revision": "0"}
            if request.path == E + "/runs" and not created:
                return 404, {"code": "EXPERIMENT_NOT_FOUND", "message": "no heart", "experiment": "heart"}
            return 201, dict(STARTED, revision="1")

        double = self.serve(respond)
        with self.assertRaises(errors.ExperimentNotFoundError):
            client_for(double).start_run("heart", heartbeat=0)
        run = client_for(double).start_run("heart", create_if_missing=True, settings={"round_limit": 10},
                                           heartbeat=0)
        self.assertEqual((run.round, run.revision, run.run_id), (0, "1", "run-1"))
        self.assertEqual(created[0]["folder"], "heart")
        self.assertEqual(created[0]["roundLimit"], 10)
        body = double.to("POST", E + "/runs")[-1].json()
        self.assertEqual(body["owner"], {"host": socket.gethostname(), "pid": os.getpid(),
                                         "name": os.path.basename(sys.argv[0])})
        self.assertFalse(body["takeOver"])

    def test_take_over_if_dead_takes_over_only_a_dead_process_of_this_host(self):
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        holders = [{"host": socket.gethostname(), "pid": os.getppid()}, {"host": "elsewhere", "pid": dead.pid},
                   {"host": socket.gethostname(), "pid": dead.pid}]

        def respond(request, n):
            body = request.json()
            if body["takeOver"]:
                return 201, dict(STARTED, resumed=True, roundCurrent=4)
            return 409, {"code": "EXPERIMENT_RUNNING", "message": "held", "experiment": "heart", "owner": holders[0]}

        double = self.serve(respond)
        for _ in range(2):
            with self.assertRaises(errors.ExperimentRunningError):
                client_for(double).start_run("heart", take_over="if-dead", heartbeat=0)
            holders.pop(0)
        run = client_for(double).start_run("heart", take_over="if-dead", heartbeat=0)
        self.assertEqual((run.round, run.resumed), (4, True))
        self.assertEqual([r.json()["takeOver"] for r in double.to("POST", E + "/runs")], [False, False, False, True])

    def test_heartbeats_run_in_the_background_and_a_lost_run_stops_recording(self):
        def respond(request, n):
            if request.path == E + "/runs":
                return 201, STARTED
            if request.path.endswith("/heartbeat"):
                if n == 0:
                    return 200, {"revision": "3"}
                return 409, {"code": "RUN_NOT_OWNED", "message": "taken over by run-2", "experiment": "heart"}
            return 500, {"code": "INTERNAL", "message": "unexpected " + request.path}

        double = self.serve(respond)
        run = client_for(double).start_run("heart", heartbeat=0.02)
        self.assertEqual(len(double.wait_for("POST", E + "/runs/run-1/heartbeat", count=2)), 2)
        self.assertEqual(double.to("POST", E + "/runs")[0].json()["heartbeatMs"], 20)
        run._thread.join(10)
        self.assertFalse(run._thread.is_alive())
        with self.assertRaises(errors.RunNotOwnedError) as caught:
            run.record_round({"w": np.zeros(1)})
        self.assertIn("run-2", str(caught.exception))
        self.assertEqual(double.to("POST", "/v1/params"), [])


class Loading(Base):
    def params_server(self, tensors, sha=None):
        data = st.dumps(tensors)
        info = {"round": 4, "params": {"sha256": sha or hashlib.sha256(data).hexdigest(), "size": len(data),
                                       "encoding": "tensors/safetensors"},
                "state": {"epoch": 5}, "metrics": {"loss": 0.3}, "settings": {"roundLimit": 10}, "revision": "12"}

        def respond(request, n):
            if request.path == E + "/rounds/last":
                return 200, info
            if request.path == E + "/rounds/4/params":
                return 200, data, {"Content-Type": "application/octet-stream"}
            return 404, {"code": "ROUND_NOT_FOUND", "message": request.path}

        return self.serve(respond)

    def test_load_returns_writable_arrays_state_and_metrics(self):
        double = self.params_server({"w": np.arange(3.0), "b": st.float32_to_bfloat16([1.5])})
        loaded = client_for(double).load("heart")
        self.assertEqual((loaded.round, loaded.state, loaded.metrics, loaded.revision),
                         (4, {"epoch": 5}, {"loss": 0.3}, "12"))
        loaded.params["w"] += 1
        self.assertEqual(loaded.params["w"].tolist(), [1.0, 2.0, 3.0])
        self.assertIsInstance(loaded.params["b"], st.BFloat16Bits)

    def test_bytes_that_do_not_match_their_sha256_are_refused(self):
        double = self.params_server({"w": np.arange(3.0)}, sha="0" * 64)
        with self.assertRaises(errors.CorruptPayloadError) as caught:
            client_for(double).load("heart")
        self.assertIn("round 4 of heart", str(caught.exception))

    # Without PyTorch: tests/test_torch.py runs that case in a process where import torch fails.
    @unittest.skipIf(importlib.util.find_spec("torch") is None, "PyTorch is not installed")
    def test_torch_tensors_round_trip(self):
        import torch

        double = self.params_server({"w": np.arange(3.0), "b": st.float32_to_bfloat16([1.5])})
        loaded = client_for(double).load("heart", as_torch=True)
        self.assertEqual(loaded.params["b"].dtype, torch.bfloat16)
        self.assertEqual(loaded.params["b"].float().tolist(), [1.5])


class Following(Base):
    def test_follow_resumes_with_last_event_id_after_a_dropped_connection(self):
        def respond(request, n):
            if n == 0:
                return [b": keep-alive\n\n", b'id: 1\nevent: RoundCompleted\ndata: {"round": 0}\n\n',
                        b'id: 2\nevent: RoundCompleted\ndata: {"round": 1}\n\nid: 3\nevent: Round']  # cut mid-event
            if n == 1:
                return [b'id: 3\nevent: RunEnded\ndata: {"round": 2}\n\nid: 4\ndata: {}\n\n', CUT]  # torn
            return [b'id: 5\nevent: RunStarted\ndata: {}\n\n']

        double = self.serve(respond)
        events = client_for(double).follow("heart", last_event_id="0")
        got = [next(events) for _ in range(5)]
        events.close()
        self.assertEqual([(e.id, e.type, e.data) for e in got],
                         [("1", "RoundCompleted", {"round": 0}), ("2", "RoundCompleted", {"round": 1}),
                          ("3", "RunEnded", {"round": 2}), ("4", "message", {}), ("5", "RunStarted", {})])
        first, second, third = double.to("GET", "/v1/events?experiment=heart")
        self.assertEqual(first.headers["Last-Event-ID"], "0")
        self.assertEqual(second.headers["Last-Event-ID"], "2")
        self.assertEqual(third.headers["Last-Event-ID"], "4")
        self.assertEqual(first.headers["Accept"], "text/event-stream")

    def test_follow_raises_an_error_answer_and_gives_up_after_bounded_reconnects(self):
        double = self.serve(lambda r, n: (404, {"code": "EXPERIMENT_NOT_FOUND", "message": "no x"}))
        with self.assertRaises(errors.ExperimentNotFoundError):
            next(client_for(double).follow("x"))
        empty = self.serve(lambda r, n: [])
        with self.assertRaises(errors.ConnectionFailedError):
            next(client_for(empty, retries=2).follow("x"))
        self.assertEqual(len(empty.to("GET", "/v1/events?experiment=x")), 3)


if __name__ == "__main__":
    unittest.main()
