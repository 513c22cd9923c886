"""A tiny scripted OpenAI-compatible server on 127.0.0.1 for the served-teacher tests (retry and failure logic)."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def completion(top: dict[str, float], api: str = "completions") -> dict:
    """An answer whose first token has the alternatives `top` (token -> probability), in either API's shape."""
    if api == "completions":
        lp = {"tokens": [max(top, key=top.get)], "top_logprobs": [{t: math.log(p) for t, p in top.items()}]}
    else:
        lp = {"content": [{"token": max(top, key=top.get),
                           "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in top.items()]}]}
    return {"model": "fake", "choices": [{"text": "", "logprobs": lp}]}


class FakeOpenAI:
    """`respond(path, body, headers) -> (status, json body[, headers])`; every request is kept in `requests`."""

    def __init__(self, respond, model_id: str | list[str] = "fake-model"):
        self.requests: list[tuple[str, dict, dict]] = []
        outer, ids = self, [model_id] if isinstance(model_id, str) else model_id

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, body):
                outer.requests.append((self.path, body, dict(self.headers)))
                if self.path.endswith("/models"):
                    got = (200, {"object": "list", "data": [{"id": m, "object": "model"} for m in ids]})
                else:
                    got = respond(self.path, body, dict(self.headers))
                status, payload, headers = (*got, {})[:3]
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's name
                self._reply({})

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                self._reply(json.loads(self.rfile.read(n) or b"{}"))

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posts(self) -> list[dict]:
        return [b for p, b, _ in self.requests if not p.endswith("/models")]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
