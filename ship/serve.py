"""`zuoxiao serve-page BUNDLE`: serve a bundle folder on 127.0.0.1 so its web/ demo page runs offline.

Content types are set explicitly: ``mimetypes`` also reads /etc/mime.types, which differs between machines
(e.g. `.mjs` as text/javascript or application/javascript); a wrong `.mjs` type breaks module loading and a
wrong `.wasm` type makes ONNX Runtime Web fall back to slower non-streaming compilation.
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading
from pathlib import Path

from zuoxiao.core.errors import InputError

MIME = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
        ".json": "application/json", ".html": "text/html", ".css": "text/css", ".md": "text/markdown",
        ".onnx": "application/octet-stream", ".ort": "application/octet-stream", ".png": "image/png",
        ".txt": "text/plain"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def log_message(self, *args):  # one request per file: too chatty for a terminal or a test log
        pass


def make_server(bundle: str | Path, port: int = 0, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``bundle`` (port 0: a free one; read ``server.server_address[1]``)."""
    bundle = Path(bundle)
    if not (bundle / "config.json").is_file():
        raise InputError(f"{bundle} is not a bundle (no config.json); give the folder written by `zuoxiao ship` "
                         "(<output_dir>/bundle)")
    if not (bundle / "web" / "index.html").is_file():
        raise InputError(f"{bundle} has no web/index.html: it was built before the web page existed; "
                         "rebuild it with `zuoxiao ship CONFIG`")
    handler = functools.partial(_Handler, directory=str(bundle))
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None


def serve_in_thread(bundle: str | Path, port: int = 0):
    """(server, base URL) with the server running in a daemon thread; call ``server.shutdown()`` to stop."""
    server = make_server(bundle, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def serve_page(bundle: str | Path, port: int = 8000) -> int:
    """Serve until Ctrl-C; prints the page URL on stderr (stdout stays free for tools)."""
    server = make_server(bundle, port)
    url = f"http://127.0.0.1:{server.server_address[1]}/web/index.html"
    if not (Path(bundle) / "web" / "vendor").is_dir():
        print(f"warning: {bundle}/web/vendor/ is missing, the page will not load the model; see the model card "
              "(README.md, 'In a browser')", file=sys.stderr)
    print(f"serving {bundle} — open {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
