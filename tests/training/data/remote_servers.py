"""Real servers on the loopback for the remote-shard tests: an HTTP file server that honours
byte ranges and injects faults on request, a moto S3 server, and their shard sets."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Faults:
    """What the server does wrong. ``once[name]``: faults used up one per GET of that file
    (``"503"``, ``"drop"``: half the body then the connection is cut, ``"stall"``: no body for
    ``stall_s``); ``cut[name]``: the file's bytes end there for every GET (the size announced
    stays whole); ``forbidden``: files answered with 403. ``requests`` records
    ``(method, path, range)`` of everything asked."""

    once: dict[str, list[str]] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    stall_s: float = 5.0
    requests: list[tuple[str, str, str]] = field(default_factory=list)


def _handler(root: Path, faults: Faults) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def _file(self) -> Path | None:
            path = (root / self.path.lstrip("/").split("?")[0]).resolve()
            return path if path.is_file() and root in path.parents else None

        def do_HEAD(self) -> None:
            faults.requests.append(("HEAD", self.path, ""))
            path = self._file()
            if path is None or path.name in faults.forbidden:
                self.send_error(404 if path is None else 403)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:
            wanted = self.headers.get("Range", "")
            faults.requests.append(("GET", self.path, wanted))
            path = self._file()
            if path is None or path.name in faults.forbidden:
                self.send_error(404 if path is None else 403)
                return
            name = path.name
            fault = faults.once[name].pop(0) if faults.once.get(name) else None
            if fault == "503":
                self.send_error(503)
                return
            data = path.read_bytes()
            start, end = 0, len(data)
            if wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                start, end = int(first), min(len(data), int(last) + 1 if last else len(data))
            body = data[start:end]
            self.send_response(206 if wanted else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            cut = faults.cut.get(name)
            if fault == "stall":
                time.sleep(faults.stall_s)
            if fault == "drop" or (cut is not None and end > cut):
                keep = len(body) // 2 if fault == "drop" else max(0, cut - start)
                self.wfile.write(body[:keep])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def http_server(root: Path, faults: Faults | None = None) -> Iterator[tuple[str, Faults]]:
    """Serve ``root`` on 127.0.0.1 (a free port) in a thread; yields (base URL, faults)."""
    faults = faults or Faults()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root.resolve(), faults))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
