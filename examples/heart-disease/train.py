"""Federated logistic regression on the UCI heart-disease data (four hospitals), recorded round by
round in roundlog through `roundlog serve`, resumable after a crash with bit-identical results.

Usage:
    python3 examples/heart-disease/train.py --url http://127.0.0.1:8080 --experiment heart --rounds 10
    # killed (even with SIGKILL) in the middle? the same command with --resume continues it:
    python3 examples/heart-disease/train.py --url http://127.0.0.1:8080 --experiment heart --rounds 10 --resume

Data (data/README.md): 920 patients of four hospitals, 13 clinical columns; target ``num > 0``.
Missing values (``NaN``, ``?``, and ``chol == 0``) are imputed with the training split's median
of that column and flagged by a 0/1 indicator column (for every column with a missing value in
the training split); the other columns are standardised with the training split's mean and
standard deviation. The split is fixed by the seed: 20% of each hospital's patients are held out.

Each round is one round of federated averaging: every hospital, in a fixed order, runs
``local_epochs`` epochs of mini-batch SGD (batch ``batch_size``, learning rate ``learning_rate``,
L2 ``l2``) from the global parameters on its own training patients, shuffled by the one seeded
random generator; the new global parameters are the average weighted by training patients. All
arithmetic is float64 and in a fixed order, so the same seed gives bit-identical parameters.

Parameters (recorded as safetensors): ``linear.weight`` float64 [1, F], ``linear.bias`` float64
[1] (F = 13 + the indicator columns). State (recorded as JSON with each round): the next round's
index, the seed, the random generator's whole state (its 128-bit integers as decimal strings:
JSON numbers stop at 2^53), the hyper-parameters and the data's SHA-256: with the last round's
parameters, everything needed to continue exactly where the run stopped.
"""

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(HERE, "data")
COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope", "ca",
           "thal"]
HOSPITALS = ["cleveland", "hungarian", "switzerland", "va"]
DEFAULTS = {"learning_rate": 0.05, "batch_size": 16, "local_epochs": 1, "l2": 1e-3, "test_fraction": 0.2}


def load_hospitals(data_dir=DATA_DIR):
    """Each hospital's records: ``{name: (X float64 [n, 13] with NaN where missing, y float64 [n]
    of 0/1)}`` and the SHA-256 of the four files (hex). ``chol == 0`` is read as missing."""
    hospitals = {}
    digest = hashlib.sha256()
    for name in HOSPITALS:
        path = os.path.join(data_dir, "processed.%s.data" % name)
        with open(path, "rb") as f:
            raw = f.read()
        digest.update(raw)
        rows = []
        for number, line in enumerate(raw.decode("ascii").splitlines(), 1):
            if not line.strip():
                continue
            cells = line.split(",")
            if len(cells) != 14:
                raise ValueError("%s line %d has %d columns, not 14" % (path, number, len(cells)))
            rows.append([math.nan if c.strip() in ("?", "NaN", "") else float(c) for c in cells])
        table = np.array(rows, dtype=np.float64)
        X, num = table[:, :13].copy(), table[:, 13]
        chol = COLUMNS.index("chol")
        X[X[:, chol] == 0, chol] = math.nan
        hospitals[name] = (X, (num > 0).astype(np.float64))
    return hospitals, digest.hexdigest()


def split(hospitals, seed, test_fraction):
    """``{name: (train_rows, test_rows)}``: sorted row indices, a fixed seeded 80/20 split per hospital
    (its own generator, seeded by ``[seed, hospital index]``, so the training generator is untouched)."""
    out = {}
    for index, name in enumerate(HOSPITALS):
        n = len(hospitals[name][1])
        order = np.random.default_rng([seed, index]).permutation(n)
        n_test = int(round(n * test_fraction))
        out[name] = (np.sort(order[n_test:]), np.sort(order[:n_test]))
    return out


class Preprocessing:
    """Imputation, indicators and standardisation fitted on the training split only."""

    def __init__(self, train_X):
        missing = np.isnan(train_X)
        self.median = np.array([np.median(col[~np.isnan(col)]) if (~np.isnan(col)).any() else 0.0
                                for col in train_X.T])
        self.flagged = np.flatnonzero(missing.any(axis=0))
        filled = np.where(missing, self.median, train_X)
        self.mean = filled.mean(axis=0)
        std = filled.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)

    @property
    def features(self):
        return len(COLUMNS) + len(self.flagged)

    def __call__(self, X):
        """Features float64 [n, 13 + flagged columns]."""
        missing = np.isnan(X)
        filled = np.where(missing, self.median, X)
        return np.hstack([(filled - self.mean) / self.std, missing[:, self.flagged].astype(np.float64)])


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _loss(w, b, X, y):
    p = np.clip(_sigmoid(X @ w + b), 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def rng_state_to_json(rng):
    """The generator's whole state as JSON (its integers as decimal strings)."""
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError("only PCG64 states are carried, not %s" % state["bit_generator"])
    return {"bit_generator": "PCG64", "state": str(state["state"]["state"]), "inc": str(state["state"]["inc"]),
            "has_uint32": int(state["has_uint32"]), "uinteger": str(state["uinteger"])}


def rng_from_json(saved):
    """The generator `rng_state_to_json` saved, in exactly that state."""
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": int(saved["state"]), "inc": int(saved["inc"])},
                               "has_uint32": int(saved["has_uint32"]), "uinteger": int(saved["uinteger"])}
    return rng


class Trainer:
    """The training loop without any I/O: `initial` gives round 0's inputs, `round` runs one round."""

    def __init__(self, seed=1, data_dir=DATA_DIR, **hyper):
        unknown = set(hyper) - set(DEFAULTS)
        if unknown:
            raise TypeError("unknown hyper-parameters: %s" % ", ".join(sorted(unknown)))
        self.seed = int(seed)
        self.hyper = dict(DEFAULTS, **hyper)
        hospitals, self.data_sha256 = load_hospitals(data_dir)
        rows = split(hospitals, self.seed, self.hyper["test_fraction"])
        train_X = np.vstack([hospitals[h][0][rows[h][0]] for h in HOSPITALS])
        self.prep = Preprocessing(train_X)
        self.train = {h: (self.prep(hospitals[h][0][rows[h][0]]), hospitals[h][1][rows[h][0]]) for h in HOSPITALS}
        self.test = {h: (self.prep(hospitals[h][0][rows[h][1]]), hospitals[h][1][rows[h][1]]) for h in HOSPITALS}

    def initial(self):
        """``(params, state)`` before round 0: small seeded random weights, a fresh generator."""
        rng = np.random.default_rng(self.seed)
        params = {"linear.weight": rng.normal(0.0, 0.01, size=(1, self.prep.features)),
                  "linear.bias": np.zeros(1, dtype=np.float64)}
        state = {"round": 0, "seed": self.seed, "rng": rng_state_to_json(rng), "hyper": self.hyper,
                 "data_sha256": self.data_sha256}
        return params, state

    def round(self, params, state):
        """One round of federated averaging from ``params`` (dict of float64 arrays, as `initial`
        gives or a load returns) and ``state`` (JSON, as recorded). Returns ``(params, state,
        metrics)`` of the next round; the inputs are not changed. Raises ValueError when ``state``
        belongs to other data, seed or hyper-parameters."""
        if state["data_sha256"] != self.data_sha256 or state["seed"] != self.seed or state["hyper"] != self.hyper:
            raise ValueError("the recorded state is of other data, seed or hyper-parameters: %s"
                             % json.dumps({k: state[k] for k in ("seed", "hyper", "data_sha256")}))
        rng = rng_from_json(state["rng"])
        w0 = np.array(params["linear.weight"], dtype=np.float64).reshape(-1)
        b0 = float(np.asarray(params["linear.bias"], dtype=np.float64).reshape(-1)[0])
        lr, batch, l2 = self.hyper["learning_rate"], self.hyper["batch_size"], self.hyper["l2"]
        total = sum(len(self.train[h][1]) for h in HOSPITALS)
        w_sum = np.zeros_like(w0)
        b_sum = 0.0
        for h in HOSPITALS:
            X, y = self.train[h]
            w, b = w0.copy(), b0
            for _ in range(self.hyper["local_epochs"]):
                order = rng.permutation(len(y))
                for start in range(0, len(y), batch):
                    rows = order[start:start + batch]
                    error = _sigmoid(X[rows] @ w + b) - y[rows]
                    w = w - lr * (X[rows].T @ error / len(rows) + l2 * w)
                    b = b - lr * float(np.mean(error))
            w_sum += w * len(y)
            b_sum += b * len(y)
        w, b = w_sum / total, b_sum / total
        metrics = {"train_loss": sum(_loss(w, b, *self.train[h]) * len(self.train[h][1]) for h in HOSPITALS) / total}
        test_X = np.vstack([self.test[h][0] for h in HOSPITALS])
        test_y = np.concatenate([self.test[h][1] for h in HOSPITALS])
        metrics["test_loss"] = _loss(w, b, test_X, test_y)
        metrics["test_accuracy"] = float(np.mean((test_X @ w + b > 0) == (test_y > 0.5)))
        for h in HOSPITALS:
            X, y = self.test[h]
            metrics["test_accuracy_" + h] = float(np.mean((X @ w + b > 0) == (y > 0.5)))
        new_state = dict(state, round=state["round"] + 1, rng=rng_state_to_json(rng))
        return {"linear.weight": w.reshape(1, -1), "linear.bias": np.array([b])}, new_state, metrics


def params_digest(params):
    """``sha256:<hex>`` of the parameters' bytes, names in sorted order (to compare two runs)."""
    digest = hashlib.sha256()
    for name in sorted(params):
        digest.update(np.ascontiguousarray(params[name]).tobytes())
    return "sha256:" + digest.hexdigest()


def _client_module():
    try:
        import roundlog_client  # noqa: PLC0415
    except ImportError:  # run from a checkout without `pip install ./clients/python`
        sys.path.insert(0, os.path.join(HERE, "..", "..", "clients", "python"))
        import roundlog_client  # noqa: PLC0415
    return roundlog_client


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None,
                        help="roundlog serve's URL (default: $ROUNDLOG_URL, else http://127.0.0.1:8080)")
    parser.add_argument("--experiment", default="heart-disease",
                        help="the experiment's folder name (created when missing)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds to reach (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resume", action="store_true",
                        help="continue an experiment that has rounds (taking over a run of this host "
                             "whose process died)")
    parser.add_argument("--data", default=DATA_DIR, help="the folder of the four processed.*.data files")
    parser.add_argument("--retries", type=int, default=6,
                        help="further attempts of a request after a connection failure or a 5xx, backoff from "
                             "0.25 s doubling up to 5 s (default 6: about 13 s, a server restart)")
    parser.add_argument("--wait-after-round", type=int, default=None, metavar="R",
                        help="after recording round R, print 'waiting after round R' and block until stdin "
                             "closes (a fixed point for a test to kill the process at)")
    args = parser.parse_args(argv)

    rc = _client_module()
    trainer = Trainer(seed=args.seed, data_dir=args.data)
    client = rc.Client(args.url, retries=args.retries)
    settings = {"round_limit": args.rounds, "seed": args.seed, "config": {"example": "heart-disease", **trainer.hyper}}
    try:
        run = client.start_run(args.experiment, create_if_missing=True, settings=settings,
                               take_over="if-dead" if args.resume else False)
    except rc.RoundlogError as error:
        print("cannot start a run of %s: %s" % (args.experiment, error), file=sys.stderr)
        return 1
    with run:
        if run.round > 0 and not args.resume:
            print("%s already has %d rounds: pass --resume to continue it" % (args.experiment, run.round),
                  file=sys.stderr)
            return 2
        if run.round == 0:
            params, state = trainer.initial()
        else:
            last = run.load("last")
            params, state = last.params, last.state
            print("resumed %s after round %d (revision %s)" % (args.experiment, last.round, run.revision), flush=True)
        while run.round < args.rounds:
            params, state, metrics = trainer.round(params, state)
            answer = run.record_round(params, metrics=metrics, state=state)
            index = int(answer.get("round", run.round - 1))
            print("round %d (%d/%d) train_loss %.6f test_loss %.6f test_accuracy %.4f revision %s" % (
                index, index + 1, args.rounds, metrics["train_loss"], metrics["test_loss"], metrics["test_accuracy"],
                answer["revision"]), flush=True)
            if args.wait_after_round == index:
                print("waiting after round %d" % index, flush=True)
                sys.stdin.read()
    print("done: %s has %d rounds; parameters %s" % (args.experiment, run.round, params_digest(params)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
