"""The heart-disease training loop without a server: deterministic, and an interruption at any
round followed by a resume from what a round records (parameters through safetensors, state
through JSON) gives bit-identical parameters."""

import json
import unittest

import numpy as np

import train

rc = train._client_module()
from roundlog_client import safetensors as st  # noqa: E402
from roundlog_client.client import _json_ready  # noqa: E402


def run(trainer, rounds, params=None, state=None):
    if params is None:
        params, state = trainer.initial()
    for _ in range(rounds):
        params, state, metrics = trainer.round(params, state)
    return params, state


def through_the_log(params, state):
    """What a resumed process gets back: params through safetensors bytes, state through JSON."""
    return st.loads(bytearray(st.dumps(params))), json.loads(json.dumps(_json_ready(state, "state")))


def same_bits(a, b):
    return sorted(a) == sorted(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes() for k in a)


class Determinism(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.reference, cls.reference_state = run(train.Trainer(seed=1), 10)

    def test_the_same_seed_gives_bit_identical_parameters(self):
        again, state = run(train.Trainer(seed=1), 10)
        self.assertTrue(same_bits(again, self.reference))
        self.assertEqual(state, self.reference_state)

    def test_another_seed_gives_other_parameters(self):
        other, _ = run(train.Trainer(seed=2), 10)
        self.assertFalse(same_bits(other, self.reference))

    def test_a_resume_after_any_round_is_bit_identical(self):
        for stop in range(10):
            params, state = through_the_log(*run(train.Trainer(seed=1), stop + 1))
            self.assertEqual(state["round"], stop + 1)
            resumed, _ = run(train.Trainer(seed=1), 10 - stop - 1, params, state)
            self.assertTrue(same_bits(resumed, self.reference), "interrupted after round %d" % stop)

    def test_parameters_are_float64_of_the_documented_shapes(self):
        features = train.Trainer(seed=1).prep.features
        self.assertEqual({k: (v.dtype.str, v.shape) for k, v in self.reference.items()},
                         {"linear.weight": ("<f8", (1, features)), "linear.bias": ("<f8", (1,))})

    def test_the_model_learns(self):
        trainer = train.Trainer(seed=1)
        params, state = trainer.initial()
        first = None
        for _ in range(10):
            params, state, metrics = trainer.round(params, state)
            first = first or metrics
        self.assertLess(metrics["train_loss"], first["train_loss"])
        self.assertGreater(metrics["test_accuracy"], 0.75)

    def test_a_state_of_another_seed_is_refused(self):
        _, state = train.Trainer(seed=2).initial()
        params, _ = train.Trainer(seed=1).initial()
        with self.assertRaises(ValueError):
            train.Trainer(seed=1).round(params, state)


class State(unittest.TestCase):
    def test_the_generator_state_survives_json_exactly(self):
        rng = np.random.default_rng(7)
        rng.random(3)
        saved = json.loads(json.dumps(train.rng_state_to_json(rng)))
        self.assertTrue(all(isinstance(v, (str, int)) and (not isinstance(v, int) or abs(v) < 2**53)
                            for v in saved.values()))
        self.assertEqual(train.rng_from_json(saved).random(5).tobytes(), rng.random(5).tobytes())

    def test_the_state_is_recordable_json(self):
        _, state = train.Trainer(seed=1).initial()
        self.assertEqual(_json_ready(state, "state"), state)


class Data(unittest.TestCase):
    def test_four_hospitals_and_chol_zero_is_missing(self):
        hospitals, digest = train.load_hospitals()
        self.assertEqual({h: len(y) for h, (X, y) in hospitals.items()},
                         {"cleveland": 303, "hungarian": 294, "switzerland": 123, "va": 200})
        chol = train.COLUMNS.index("chol")
        for X, y in hospitals.values():
            self.assertFalse((X[:, chol] == 0).any())
            self.assertTrue(set(np.unique(y)) <= {0.0, 1.0})
        self.assertTrue(np.isnan(hospitals["switzerland"][0][:, chol]).all())
        self.assertEqual(len(digest), 64)

    def test_the_split_is_fixed_by_the_seed_and_disjoint(self):
        hospitals, _ = train.load_hospitals()
        a, b, c = (train.split(hospitals, s, 0.2) for s in (1, 1, 2))
        for h in train.HOSPITALS:
            self.assertEqual(a[h][0].tolist(), b[h][0].tolist())
            self.assertEqual(set(a[h][0]) & set(a[h][1]), set())
            self.assertEqual(len(a[h][0]) + len(a[h][1]), len(hospitals[h][1]))
        self.assertNotEqual(a["va"][1].tolist(), c["va"][1].tolist())

    def test_imputation_and_scaling_use_the_training_split_only(self):
        trainer = train.Trainer(seed=1)
        hospitals, _ = train.load_hospitals()
        rows = train.split(hospitals, 1, 0.2)
        train_X = np.vstack([hospitals[h][0][rows[h][0]] for h in train.HOSPITALS])
        self.assertEqual(trainer.prep.median.tobytes(), np.nanmedian(train_X, axis=0).tobytes())
        features = np.vstack([trainer.train[h][0] for h in train.HOSPITALS])
        self.assertFalse(np.isnan(features).any())
        scaled = features[:, :len(train.COLUMNS)]
        np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
        self.assertTrue(set(np.unique(features[:, len(train.COLUMNS):])) <= {0.0, 1.0})


if __name__ == "__main__":
    unittest.main()
