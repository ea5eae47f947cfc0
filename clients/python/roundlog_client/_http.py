"""HTTP transport of the client: one request, typed errors, and the retries that are safe.

A request is retried only when ``idempotent`` is true (every mutating request the client sends
carries a ``requestId`` or is content-addressed, which makes it so) and the failure says nothing
was answered: a connection refused, reset or closed before a response, a timeout, or an HTTP 5xx.
A 4xx is never retried (a 409 conflict in particular: retrying cannot make it succeed). Attempts
are bounded (``retries`` after the first), with exponential backoff from ``backoff`` seconds,
doubled each time, capped at ``max_backoff``, plus up to 10% random jitter.
"""

import http.client
import json
import random
import socket
import time
import urllib.parse

from .errors import ConnectionFailedError, ProtocolError, ServerError, error_from_response

_RETRYABLE = (
    ConnectionError,  # refused, reset, aborted, and http.client.RemoteDisconnected
    http.client.BadStatusLine,
    http.client.IncompleteRead,
    socket.timeout,
    TimeoutError,
    OSError,
)


class Response:
    """A finished response: ``status`` (int), ``headers`` (http.client.HTTPMessage), ``body`` (bytearray)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self, where=""):
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as error:
            raise ProtocolError(
                "%s answered %d with a body that is not JSON (%s): %r"
                % (where or "the server", self.status, error, bytes(self.body[:200])),
                status=self.status,
            ) from None


class Transport:
    """Sends requests to ``base_url`` (``http://host:port``, optionally with a path prefix)."""

    def __init__(self, base_url, token=None, timeout=30.0, retries=4, backoff=0.25, max_backoff=5.0, sleep=time.sleep):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError("url must be http://host:port or https://host:port, not %r" % (base_url,))
        self.base_url = base_url.rstrip("/")
        self.scheme = parsed.scheme
        self.host = parsed.hostname
        self.port = parsed.port
        self.prefix = parsed.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._random = random.Random()

    def connection(self, timeout=None):
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout if timeout is None else timeout)

    def headers(self, extra=None):
        headers = {"Accept": "application/json", "User-Agent": "roundlog-client-python/0.1"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if extra:
            headers.update(extra)
        return headers

    def delay(self, attempt):
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        base = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return base + base * 0.1 * self._random.random()

    def request(self, method, path, json_body=None, body=None, headers=None, idempotent=False, query=None):
        """Sends one logical request, retried as the module says; returns a `Response` with a 2xx
        status. ``json_body``: an object sent as JSON; ``body``: bytes or a list of bytes-like
        chunks (sent with Content-Length, re-sent whole on a retry). Raises the typed error of a
        non-2xx response, or `ConnectionFailedError` once every attempt failed to connect."""
        url_path = self.prefix + path
        if query:
            url_path += "?" + urllib.parse.urlencode(query)
        all_headers = self.headers(headers)
        if json_body is not None:
            payload = [json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode("utf-8")]
            all_headers["Content-Type"] = "application/json"
        elif body is not None:
            payload = [body] if isinstance(body, (bytes, bytearray, memoryview)) else list(body)
            all_headers.setdefault("Content-Type", "application/octet-stream")
        else:
            payload = None
        if payload is not None:
            all_headers["Content-Length"] = str(sum(memoryview(c).nbytes for c in payload))
        where = "%s %s" % (method, url_path)
        attempts = 1 + (self.retries if idempotent else 0)
        last = None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._sleep(self.delay(attempt - 1))
            try:
                response = self._once(method, url_path, payload, all_headers)
            except _RETRYABLE as error:
                last = error
                continue
            if 200 <= response.status < 300:
                return response
            error = error_from_response(response.status, response.body, where)
            if response.status >= 500 and attempt < attempts:
                last = error
                continue
            if isinstance(error, ServerError) or response.status >= 500:
                error.fields.setdefault("attempts", attempt)
            raise error
        if isinstance(last, ServerError):
            raise last
        raise ConnectionFailedError(
            "%s to %s failed after %d attempt%s: %s"
            % (where, self.base_url, attempts, "" if attempts == 1 else "s", last or "no response"),
            fields={"url": self.base_url + url_path, "attempts": attempts, "reason": str(last)},
        )

    def _once(self, method, url_path, payload, headers):
        conn = self.connection()
        try:
            conn.putrequest(method, url_path, skip_accept_encoding=True)
            for key, value in headers.items():
                conn.putheader(key, value)
            conn.endheaders()
            if payload is not None:
                try:
                    for chunk in payload:
                        conn.send(chunk)
                except OSError as send_error:
                    # The server may answer before reading the whole body (413 over its limit) and
                    # close: that answer, when it arrived, says more than the broken pipe.
                    try:
                        response = conn.getresponse()
                    except (OSError, http.client.HTTPException):
                        raise send_error from None
                    return self._read(response)
            response = conn.getresponse()
            return self._read(response)
        finally:
            conn.close()

    @staticmethod
    def _read(response):
        """The whole response (a body of known length read straight into one buffer)."""
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit():
            data = bytearray(int(length))
            view = memoryview(data)
            got = 0
            while got < len(data):
                n = response.readinto(view[got:])
                if not n:
                    raise http.client.IncompleteRead(bytes(view[:got]), len(data) - got)
                got += n
        else:
            data = bytearray(response.read())
        return Response(response.status, response.headers, data)

    def open_stream(self, path, query=None, headers=None, timeout=None):
        """Opens a GET whose body is read as it arrives (Server-Sent Events). Returns
        ``(connection, response)`` with a 2xx status; raises the typed error otherwise, and lets
        connection errors through (the caller decides about reconnecting)."""
        url_path = self.prefix + path
        if query:
            url_path += "?" + urllib.parse.urlencode(query)
        conn = self.connection(timeout)
        try:
            conn.putrequest("GET", url_path, skip_accept_encoding=True)
            for key, value in self.headers(headers).items():
                conn.putheader(key, value)
            conn.endheaders()
            response = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        if not 200 <= response.status < 300:
            body = response.read()
            conn.close()
            raise error_from_response(response.status, body, "GET " + url_path)
        return conn, response
