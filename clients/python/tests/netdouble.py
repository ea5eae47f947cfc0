"""A stand-in for the network in tests: a local HTTP server that answers from a script.

Not a model of roundlog: each test states the exact responses it needs (including dropped
connections and 5xx) and then checks what the client sent.
"""

import http.server
import json
import threading

DROP = object()  # close the connection without answering (the answer was "lost")
CUT = object()  # in a stream: close the connection there, without the last chunk


class Request:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class NetDouble:
    """``respond(request, n)`` -> ``(status, body)`` (body: dict -> JSON, bytes as they are),
    ``(status, body, headers)``, `DROP`, or an iterable of bytes chunks to stream (status 200,
    then the connection closes). ``n`` counts earlier requests to the same method and path."""

    def __init__(self, respond):
        self.respond = respond
        self.requests = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers), body)
                with double.lock:
                    n = sum(1 for r in double.requests if (r.method, r.path) == (request.method, request.path))
                    double.requests.append(request)
                    double.arrived.notify_all()
                answer = double.respond(request, n)
                if answer is DROP:
                    self.close_connection = True
                    return
                if isinstance(answer, tuple):
                    status, payload = answer[0], answer[1]
                    headers = answer[2] if len(answer) > 2 else {}
                    data = payload if isinstance(payload, (bytes, bytearray)) else json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                # A stream, chunked as a server that does not know its length sends it; ended with
                # the last chunk, or cut (no last chunk) when the script yields `CUT`.
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                cut = False
                for chunk in answer:
                    if chunk is CUT:
                        cut = True
                        break
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                if not cut:
                    self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def to(self, method, path):
        with self.lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def wait_for(self, method, path, count=1, timeout=10.0):
        """Blocks until ``count`` requests to ``method path`` arrived (or the timeout); returns them."""
        with self.arrived:
            self.arrived.wait_for(
                lambda: sum(1 for r in self.requests if (r.method, r.path) == (method, path)) >= count, timeout
            )
        return self.to(method, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
