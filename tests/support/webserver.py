"""A small HTTP(S) server for integration tests of ACI fetching and appc discovery.

It serves a mutable table of routes (path, optionally with its query, -> a ``Reply``) from a
thread on 127.0.0.1 and records every request, so a test can say what a client asked for and
change what the server answers (a new ETag, a 202, a cut) between two runs. With ``tls`` it
serves a certificate made by ``openssl`` for ``localhost`` and 127.0.0.1; clients trust it
through ``SSL_CERT_FILE=server.ca`` (OpenSSL's default verify paths honour it).

Appc discovery needs a host name on the standard port (names such as ``localhost/app`` have no
port), so ``port=443`` (or 80) may be asked for; we are root. ``port_free`` says whether it is.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Reply:
    """What a route answers. ``body`` may be cut after ``cut`` bytes (the connection then
    closes); ``pace`` seconds pass between 64 KiB pieces of the body (a slow download);
    ``handler`` (if set) decides per request."""

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    cut: int | None = None
    pace: float = 0.0
    handler: Callable[[BaseHTTPRequestHandler], Reply] | None = None


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def make_cert(root: Path, name: str = "localhost") -> tuple[Path, Path]:
    """(key, cert) of a self-signed certificate for ``name`` and 127.0.0.1, valid one day."""
    root.mkdir(parents=True, exist_ok=True)
    key, cert = root / f"{name}.key", root / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


PIECE = 64 << 10


class WebServer:
    """``routes["/app.aci"] = Reply(data, headers={"ETag": '"1"'})``; ``requests`` lists what came."""

    def __init__(self, root: Path, *, tls: bool = True, port: int = 0) -> None:
        self.routes: dict[str, Reply] = {}
        self.requests: list[Request] = []
        self.tls = tls
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
                self._answer(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(head=False)

            def _answer(self, *, head: bool) -> None:
                server.requests.append(Request(self.command, self.path, dict(self.headers.items())))
                reply = server.routes.get(self.path) or server.routes.get(self.path.split("?", 1)[0])
                if reply is None:
                    reply = Reply(b"not found\n", 404)
                while reply.handler is not None:
                    reply = reply.handler(self)
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                for k, v in headers.items():
                    self.send_header(k, v)
                if reply.cut is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if head:
                    return
                body = reply.body if reply.cut is None else reply.body[:reply.cut]
                step = PIECE if reply.pace else max(len(body), 1)
                try:
                    for i in range(0, len(body), step):
                        if reply.pace and i:
                            time.sleep(reply.pace)
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                except OSError:
                    return
                if reply.cut is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.ca: Path | None = None
        if tls:
            key, cert = make_cert(root)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.ca = cert
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        """``https://localhost`` (standard port) or ``https://127.0.0.1:PORT``."""
        scheme = "https" if self.tls else "http"
        standard = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        return f"{scheme}://localhost" if standard else f"{scheme}://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment a client needs to trust this server's certificate."""
        return {"SSL_CERT_FILE": str(self.ca)} if self.ca else {}

    def paths(self, method: str = "GET") -> list[str]:
        return [r.path for r in self.requests if r.method == method]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
