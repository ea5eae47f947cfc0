"""Typed errors from the server's JSON error bodies."""

import json
import unittest

from roundlog_client import errors as e


def body(**fields):
    return json.dumps(fields).encode()


class ErrorMapping(unittest.TestCase):
    def test_each_code_of_the_contract_maps_to_its_class(self):
        cases = [
            (400, "INVALID_REQUEST", e.InvalidRequestError),
            (400, "INVALID_JSON", e.InvalidRequestError),
            (400, "CORRUPT_PAYLOAD", e.CorruptPayloadError),
            (400, "UNRECORDABLE_VALUE", e.UnrecordableValueError),
            (401, "UNAUTHORIZED", e.UnauthorizedError),
            (404, "EXPERIMENT_NOT_FOUND", e.ExperimentNotFoundError),
            (404, "ROUND_NOT_FOUND", e.RoundNotFoundError),
            (404, "NO_BREAKPOINT", e.NoBreakpointError),
            (404, "ROUND_PRUNED", e.RoundPrunedError),
            (404, "ROUND_NOT_IN_HISTORY", e.RoundNotInHistoryError),
            (404, "NOT_FOUND", e.NotFoundError),
            (409, "CONCURRENT_MODIFICATION", e.ConcurrentModificationError),
            (409, "WRONG_EXPECTED_REVISION", e.ConcurrentModificationError),
            (409, "EXPERIMENT_RUNNING", e.ExperimentRunningError),
            (409, "RUN_NOT_OWNED", e.RunNotOwnedError),
            (409, "EXPERIMENT_EXISTS", e.ExperimentExistsError),
            (409, "IDEMPOTENCY_KEY_REUSED", e.IdempotencyKeyReusedError),
            (413, "BODY_TOO_LARGE", e.BodyTooLargeError),
            (415, "UNSUPPORTED_MEDIA_TYPE", e.UnsupportedMediaTypeError),
            (500, "INTERNAL", e.ServerError),
            (503, "LOG_LOCKED", e.ServiceUnavailableError),
            (503, "CLOSED", e.ServiceUnavailableError),
        ]
        for status, code, cls in cases:
            error = e.error_from_response(status, body(code=code, message="m"), "GET /v1/x")
            self.assertIs(type(error), cls, code)
            self.assertEqual((error.code, error.status, error.message), (code, status, "m"))
            self.assertIsInstance(error, e.RoundlogError)

    def test_fields_are_kept_and_readable_as_attributes(self):
        error = e.error_from_response(409, body(code="CONCURRENT_MODIFICATION", message="Experiment_0001 moved on",
                                                experiment="Experiment_0001", expectedRevision="7",
                                                actualRevision="9"))
        self.assertIsInstance(error, e.ConflictError)
        self.assertEqual(error.fields,
                         {"experiment": "Experiment_0001", "expectedRevision": "7", "actualRevision": "9"})
        self.assertEqual(error.actualRevision, "9")
        self.assertIn("CONCURRENT_MODIFICATION (HTTP 409): Experiment_0001 moved on", str(error))
        with self.assertRaises(AttributeError):
            error.nope  # noqa: B018

    def test_an_unknown_code_falls_back_on_the_status(self):
        self.assertIs(type(e.error_from_response(409, body(code="SOMETHING_NEW", message="m"))), e.ConflictError)
        self.assertIs(type(e.error_from_response(404, body(code="SOMETHING_NEW", message="m"))), e.NotFoundError)
        self.assertIs(type(e.error_from_response(503, body(code="SOMETHING_NEW", message="m"))),
                      e.ServiceUnavailableError)
        self.assertIs(type(e.error_from_response(507, body(code="SOMETHING_NEW", message="m"))), e.ServerError)
        self.assertIs(type(e.error_from_response(418, body(code="TEAPOT", message="m"))), e.RoundlogError)
        self.assertEqual(e.error_from_response(409, body(code="SOMETHING_NEW")).code, "SOMETHING_NEW")

    def test_a_body_that_is_not_a_json_error_names_the_request_and_status(self):
        error = e.error_from_response(502, b"<html>Bad gateway</html>", "POST /v1/params")
        self.assertIs(type(error), e.ServerError)
        self.assertEqual(error.code, "HTTP_502")
        self.assertIn("POST /v1/params answered HTTP 502: <html>Bad gateway</html>", error.message)
        self.assertEqual(e.error_from_response(400, b"").code, "HTTP_400")
        self.assertIs(type(e.error_from_response(400, b'["x"]')), e.InvalidRequestError)

    def test_a_body_without_message_gets_one(self):
        error = e.error_from_response(401, body(code="UNAUTHORIZED"), "GET /v1/experiments")
        self.assertEqual(error.message, "GET /v1/experiments answered 401 UNAUTHORIZED")


if __name__ == "__main__":
    unittest.main()
