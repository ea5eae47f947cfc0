"""One Run recording from several threads; the NaN-metric advice;
``create_experiment(retention=)``."""

import hashlib
import threading
import unittest

import numpy as np

from roundlog_client import errors

from .netdouble import NetDouble
from .test_client import E, STARTED, Base, client_for


def strict_server():
    """A respond function that, like the server, takes only the next round (else ROUND_MISMATCH).
    The first upload waits (at most 2 s) for a second one: two records racing for one index both
    reach the server; records taken one at a time never upload two at once, and the wait lapses."""
    state = {"next": 0, "uploads": 0}
    lock = threading.Lock()
    second_upload = threading.Event()

    def respond(request, n):
        if request.path == E + "/runs":
            return 201, STARTED
        if request.path == "/v1/params":
            with lock:
                state["uploads"] += 1
                first = state["uploads"] == 1
            if first:
                second_upload.wait(2)
            else:
                second_upload.set()
            digest = hashlib.sha256(request.body).hexdigest()
            return 201, {"sha256": digest, "size": len(request.body), "encoding": "tensors/safetensors", "tensors": {}}
        if request.path == E + "/rounds":
            body = request.json()
            with lock:
                if body["round"] != state["next"]:
                    return 409, {"code": "ROUND_MISMATCH", "message": "round %d, expected %d" % (body["round"], state["next"]),
                                 "expected": state["next"]}
                state["next"] += 1
                return 201, {"round": body["round"], "revision": str(4 + body["round"])}
        if request.path.startswith(E + "/runs/run-1/"):
            return 200, {"revision": "3"}
        return 404, {"code": "NOT_FOUND", "message": request.path}

    return respond


class RunThreadsTest(Base):
    def test_one_run_used_from_two_threads_records_rounds_0_and_1(self):
        double = self.serve(strict_server())
        run = client_for(double).start_run("heart", heartbeat=0)
        failures = []

        def record(value):
            try:
                run.record_round({"w": np.full(2, value, dtype=np.float32)}, metrics={"loss": value})
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                failures.append(error)

        threads = [threading.Thread(target=record, args=(float(i),)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(failures, [])
        self.assertEqual(sorted(r.json()["round"] for r in double.to("POST", E + "/rounds")), [0, 1])
        self.assertEqual(run.round, 2)


class MessagesTest(Base):
    def test_a_nan_metric_is_not_told_to_be_recorded_as_none_or_a_string(self):
        double = self.serve(strict_server())
        run = client_for(double).start_run("heart", heartbeat=0)
        with self.assertRaises(errors.UnrecordableValueError) as caught:
            run.record_round({"w": np.zeros(1)}, metrics={"loss": float("nan")})
        self.assertNotIn("None or a string", str(caught.exception))
        self.assertIn("leave the metric out", str(caught.exception))
        with self.assertRaises(errors.UnrecordableValueError) as caught:
            run.record_round({"w": np.zeros(1)}, state={"best": float("inf")})
        self.assertIn("record None or a string", str(caught.exception))

    def test_create_experiment_sends_the_retention_policy(self):
        double = self.serve(lambda request, n: (201, {"experiment": {"folder": "x"}, "revision": "1"}))
        client_for(double).create_experiment(round_limit=3, retention={"keepLast": 2, "keepEvery": 5})
        (sent,) = double.to("POST", "/v1/experiments")
        self.assertEqual(sent.json()["retention"], {"keepLast": 2, "keepEvery": 5})
        self.assertEqual(sent.json()["roundLimit"], 3)


if __name__ == "__main__":
    unittest.main()
