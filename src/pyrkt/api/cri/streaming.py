"""The CRI streaming server: what ``Exec``, ``Attach`` and ``PortForward`` answer is a URL here
(``http://127.0.0.1:PORT/exec/TOKEN``, as containerd's), which the kubelet proxies its client's
upgraded connection to.

Tokens are single-use and expire a minute after the call that made them, as the kubelet's
streaming library's request cache (at most 1000 waiting). Two transports are served, on the
same URLs and the same back ends (``Runner``): Kubernetes' WebSocket protocols, and SPDY/3.1 (what
the API server and the kubelet speak to a runtime, spdy.py), told apart by the ``Upgrade`` header.

WebSocket: for exec and attach the remote-command channels (``v5.channel.k8s.io``,
``v4.channel.k8s.io``; ``channel.k8s.io`` or none: v1's, whose status is plain text): each
binary message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the final status (a
metav1.Status JSON, the exit code in a cause ``ExitCode``), 4 terminal resizes
(``{"Width":W,"Height":H}``), and in v5, 255 closes the channel its one byte names (the
client's end of stdin); an empty message on the lowest channel the client reads says the
streams are set up. For port forwarding (``v4.channel.k8s.io``, or none): channels 2i and
2i+1 are the data and error streams of the i-th port, each opened by a message holding the
port (2 bytes, little endian).

SPDY/3.1 (the kubelet's streaming server's protocols, ``X-Stream-Protocol-Version`` negotiated,
the client's first one that is known; refused with 403 and the ones known): for exec and attach
(``v5.channel.k8s.io``, as v4 over SPDY, ``v4``, ``v3``, ``v2.channel.k8s.io``,
``channel.k8s.io``), the client opens one stream per ``streamType`` header (error, stdin, stdout,
stderr, and resize when there is a terminal, from v3), all of them within 30 seconds; the error
stream carries the status as in WebSocket's channel 3 (JSON from v4, text before), the resize
stream a sequence of TerminalSize JSON objects, and the client's FIN on stdin closes the
command's stdin. For port forwarding (``portforward.k8s.io``) each connection to forward is a
pair of streams (``streamType`` data and error, the same ``port`` and ``requestID`` headers),
each pair one TCP connection to 127.0.0.1:port in the pod's network namespace; half-closes go
through both ways and errors are the kubelet's JSON on the error stream.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import queue
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pyrkt.api.cri import spdy
from pyrkt.api.cri import websocket as ws
from pyrkt.config import Config
from pyrkt.errors import PyrktError, UsageError

TOKEN_TTL = 60.0  # seconds, the kubelet's CacheTTL
MAX_IN_FLIGHT = 1000  # tokens waiting, the kubelet's maxInFlight
TOKEN_BYTES = 8
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")  # or none: channel.k8s.io's
PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io",)  # or none
SPDY_EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                       "channel.k8s.io")
SPDY_PORTFORWARD_PROTOCOLS = ("portforward.k8s.io",)
SPDY_RESIZE = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io")  # a resize stream with a terminal
STATUS_JSON = ("v5.channel.k8s.io", "v4.channel.k8s.io")  # the others' status is an error's text, nothing for 0
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_CHANNEL = 255  # v5: the one byte after names a channel the client has closed
CHUNK = 32768
HEADER_LIMIT = 16384
HANDSHAKE_TIMEOUT = 30.0
STREAM_CREATION_TIMEOUT = 30.0  # seconds for a SPDY client to open its streams, the kubelet's default
RESIZE_LIMIT = 4096  # bytes of a resize stream's JSON object, at most
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR, "resize": RESIZE}


class TokenCache:
    """Single-use tokens for requests, each expiring ``ttl`` seconds after it was made."""

    def __init__(self, ttl: float = TOKEN_TTL, limit: int = MAX_IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.limit = limit
        self.clock = clock
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[float, Any]] = {}

    def insert(self, request: Any) -> str:
        with self.lock:
            now = self.clock()
            for token in [t for t, (expiry, _) in self.entries.items() if expiry <= now]:
                del self.entries[token]
            if len(self.entries) >= self.limit:
                raise ResourceExhausted(f"too many streaming requests waiting (at most {self.limit})")
            token = base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).decode().rstrip("=")
            self.entries[token] = (now + self.ttl, request)
            return token

    def consume(self, token: str) -> Any | None:
        """The request of a token made and not yet used nor expired (then never again), else None."""
        with self.lock:
            entry = self.entries.pop(token, None)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]


class ResourceExhausted(PyrktError):
    """Too many tokens waiting (RESOURCE_EXHAUSTED)."""


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def exit_status(code: int, argv: list[str], protocol: str = STATUS_JSON[-1]) -> bytes:
    """The status message: in v4 and v5 Success for 0, else a NonZeroExitCode failure naming
    the code (a metav1.Status); before v4, a failure's message alone, and nothing for 0."""
    message = (f"command terminated with non-zero exit code: error executing command [{' '.join(argv)}], "
               f"exit code {code}")
    if protocol not in STATUS_JSON:
        return message.encode() if code else b""
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps({"metadata": {}, "status": "Failure", "message": message, "reason": "NonZeroExitCode",
                       "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}).encode()


def failure_status(message: str, protocol: str = STATUS_JSON[-1]) -> bytes:
    if protocol not in STATUS_JSON:
        return message.encode()
    return json.dumps({"metadata": {}, "status": "Failure", "message": message,
                       "reason": "InternalError", "code": 500}).encode()


def frame(channel: int, data: bytes) -> bytes:
    return ws.encode(ws.BINARY, bytes([channel]) + data)


class Request:
    """What a streaming URL was made for: ``kind`` exec, attach or portforward."""

    def __init__(self, kind: str, **fields: Any) -> None:
        self.kind = kind
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None


class Connection:
    """One upgraded connection: sends are whole frames, under a lock (several pumps write)."""

    def __init__(self, sock: socket.socket, protocol: str) -> None:
        self.sock = sock
        self.protocol = protocol
        self.lock = threading.Lock()
        self.reader = ws.Reader(sock.recv, self.send_raw, masked=True)

    def send_raw(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def send(self, channel: int, data: bytes) -> None:
        self.send_raw(frame(channel, data))

    def opened(self, req: Request) -> None:
        """An empty message on the lowest channel the client reads: the streams are set up (as
        the kubelet's streaming server does)."""
        self.send(STDOUT if req.stdout else STDERR if req.stderr else ERROR, b"")

    def close(self, code: int = ws.CLOSE_NORMAL, reason: str = "") -> None:
        try:
            self.send_raw(ws.encode(ws.CLOSE, ws.close_payload(code, reason)))
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(2.0)
            while self.sock.recv(CHUNK):  # the client's close, then its end of the connection
                pass
        except OSError:
            pass

    def messages(self) -> Any:
        """(channel, data) of each message from the client, until it closes."""
        while True:
            try:
                _, data = self.reader.message()
            except (ws.Closed, OSError):
                return
            except ws.ProtocolError as e:
                self.close(e.code, str(e))
                return
            if data:
                yield data[0], data[1:]


class SpdyConnection:
    """An exec's or attach's SPDY session, seen as WebSocket's channels by the back ends: the
    client's streams by their ``streamType``, awaited before the command starts."""

    def __init__(self, sock: socket.socket, protocol: str, req: Request) -> None:
        self.protocol = protocol
        self.wanted = {ERROR} | {ch for ch, on in ((STDIN, req.stdin), (STDOUT, req.stdout), (STDERR, req.stderr),
                                                   (RESIZE, req.tty and protocol in SPDY_RESIZE)) if on}
        self.streams: dict[int, spdy.Stream] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.session = spdy.Session(sock, self.on_stream, on_reply=self.on_reply)

    def on_stream(self, stream: spdy.Stream) -> str | None:
        """Every stream accepted, as by the kubelet; one of a type not asked for, or again, is
        not read (its data dropped)."""
        channel = STREAM_TYPES.get(stream.header("streamtype"), -1)
        with self.lock:
            if channel not in self.wanted or channel in self.streams:
                stream.discard = True
            elif channel not in (STDIN, RESIZE):
                stream.discard = True  # ours to write to
        return None

    def on_reply(self, stream: spdy.Stream) -> None:
        channel = STREAM_TYPES.get(stream.header("streamtype"), -1)
        with self.lock:
            if channel in self.wanted and channel not in self.streams:
                self.streams[channel] = stream
                if set(self.streams) == self.wanted:
                    self.ready.set()

    def wait_streams(self, kind: str, timeout: float = STREAM_CREATION_TIMEOUT) -> bool:
        """The streams the request needs, all opened within ``timeout`` seconds (else one line
        on stderr, as the kubelet logs it, and the session closed), unless the client goes."""
        self.session.start()
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.session.ended:
                return False
            if time.monotonic() > deadline:
                sys.stderr.write(f"pyrkt cri: streaming: {kind}: timed out waiting for the client to create "
                                 "streams\n")
                self.session.close(0.5)
                return False
        return True

    def opened(self, req: Request) -> None:
        """Nothing to say: the replies to its streams told the client they are set up."""

    def send(self, channel: int, data: bytes) -> None:
        stream = self.streams.get(channel)
        if stream is not None and data:
            stream.write(data)

    def messages(self) -> Any:
        """(channel, data) as WebSocket's messages: stdin's data then, at its FIN (or reset), a
        close of channel 0 (v5's); each terminal size the resize stream carries; until the
        session ends."""
        events: queue.Queue[tuple[int, bytes] | None] = queue.Queue()

        def stdin(stream: spdy.Stream) -> None:
            while data := stream.read():
                events.put((STDIN, data))
            if not self.session.ended:
                events.put((CLOSE_CHANNEL, bytes([STDIN])))

        def resizes(stream: spdy.Stream) -> None:
            decoder = json.JSONDecoder()
            pending = ""
            while data := stream.read():
                pending += data.decode("utf-8", errors="replace")
                while pending.strip():
                    try:
                        obj, end = decoder.raw_decode(pending.lstrip())
                    except ValueError:
                        if len(pending) > RESIZE_LIMIT:
                            pending = ""  # not JSON: dropped, as the kubelet stops reading it
                        break
                    pending = pending.lstrip()[end:]
                    events.put((RESIZE, json.dumps(obj).encode()))

        def ended() -> None:
            self.session.wait_ended()
            events.put(None)

        readers = {STDIN: stdin, RESIZE: resizes}
        for channel, stream in self.streams.items():
            if channel in readers:
                threading.Thread(target=readers[channel], args=(stream,), daemon=True).start()
        threading.Thread(target=ended, daemon=True).start()
        while (event := events.get()) is not None:
            yield event

    def close(self) -> None:
        """Our half of each stream closed (FIN: the client reads to the end of stdout, stderr
        and error), then GOAWAY and the connection."""
        for channel in (STDOUT, STDERR, ERROR, STDIN, RESIZE):
            stream = self.streams.get(channel)
            if stream is not None:
                stream.close()
        self.session.close()


class SpdyForwarder:
    """A port-forward SPDY session: stream pairs (data and error) matched by their ``requestID``
    (or, from a client that sends none, by their stream ids as the kubelet does), each pair
    forwarded by the back end once both are open; a pair not complete within the stream
    creation timeout is told so on its error stream."""

    def __init__(self, sock: socket.socket, runner: Runner, req: Request,
                 timeout: float = STREAM_CREATION_TIMEOUT) -> None:
        self.runner = runner
        self.req = req
        self.timeout = timeout
        self.lock = threading.Lock()
        self.pairs: dict[str, dict[str, spdy.Stream]] = {}
        self.forwards: list[threading.Thread] = []
        self.session = spdy.Session(sock, self.on_stream, on_reply=self.on_reply)

    @staticmethod
    def on_stream(stream: spdy.Stream) -> str | None:
        port, kind = stream.header("port"), stream.header("streamtype")
        if not port:
            return '"port" header is required'
        if not port.isdigit() or int(port) >= 1 << 16:
            return f"unable to parse {port!r} as a port"
        if int(port) < 1:
            return f"port {port!r} must be > 0"
        if not kind:
            return '"streamType" header is required'
        if kind not in ("data", "error"):
            return f"invalid stream type {kind!r}"
        stream.discard = kind == "error"  # nothing to read there
        return None

    def on_reply(self, stream: spdy.Stream) -> None:
        kind = stream.header("streamtype")
        rid = stream.header("requestid") or str(stream.id if kind == "error" else stream.id - 2)
        with self.lock:
            pair = self.pairs.get(rid)
            if pair is None:
                pair = self.pairs[rid] = {}
                timer = threading.Timer(self.timeout, self.expire, (rid, pair))
                timer.daemon = True
                timer.start()
            if kind in pair:
                problem = f"error processing stream for request {rid}: {kind} stream already assigned"
            else:
                pair[kind] = stream
                problem = ""
                if len(pair) == 2:
                    del self.pairs[rid]
                    t = threading.Thread(target=self.runner.forward, daemon=True, args=(
                        self.req, int(pair["data"].header("port")), pair["data"], pair["error"]))
                    self.forwards.append(t)
                    t.start()
        if problem and "error" in pair:
            threading.Thread(target=say, args=(pair["error"], problem), daemon=True).start()

    def expire(self, rid: str, pair: dict[str, spdy.Stream]) -> None:
        with self.lock:
            if self.pairs.get(rid) is not pair:
                return
            del self.pairs[rid]
        if "error" in pair:
            say(pair["error"], f"timed out waiting for streams of request {rid}")
        for stream in pair.values():
            stream.close()

    def run(self) -> None:
        """Until the client ends the session; then its forwards end too."""
        self.session.start()
        self.session.wait_ended()
        for t in list(self.forwards):
            t.join(5.0)


def say(stream: spdy.Stream, message: str) -> None:
    try:
        stream.write(message.encode())
    except OSError:
        pass


class StreamServer:
    """The HTTP server on ``addr`` (loopback unless asked otherwise) serving the URLs."""

    def __init__(self, addr: str, runner: Runner) -> None:
        host, port = split_addr(addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((host, port))
        except OSError as e:
            self.listener.close()
            raise PyrktError(f"--stream-addr={addr}: cannot listen there: {e.strerror}") from None
        self.listener.listen(64)
        bound = self.listener.getsockname()
        self.base = f"http://{'[' + host + ']' if family == socket.AF_INET6 else host}:{bound[1]}"
        self.cache = TokenCache()
        self.runner = runner
        self.done = False
        self.thread = threading.Thread(target=self.accept, name="cri-stream", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.done = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def url(self, request: Request) -> str:
        return f"{self.base}/{request.kind}/{self.cache.insert(request)}"

    def accept(self) -> None:
        while not self.done:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                if self.done:
                    return
                continue
            threading.Thread(target=self.serve, args=(conn,), name="cri-stream-conn", daemon=True).start()

    # -- HTTP ---------------------------------------------------------------------------------

    @staticmethod
    def reply(sock: socket.socket, status: str, message: str, extra: str = "") -> None:
        body = (message + "\n").encode()
        head = (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        try:
            sock.sendall(head.encode() + body)
        except OSError:
            pass

    @staticmethod
    def read_head(sock: socket.socket) -> tuple[str, str, dict[str, str]] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk or len(data) > HEADER_LIMIT:
                return None
            data += chunk
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) != 3:
            return None
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
        return parts[0], parts[1], headers

    def serve(self, sock: socket.socket) -> None:
        try:
            sock.settimeout(HANDSHAKE_TIMEOUT)
            head = self.read_head(sock)
            if head is None:
                self.reply(sock, "400 Bad Request", "malformed HTTP request")
                return
            method, target, headers = head
            url = urlsplit(target)
            kind, _, token = url.path.strip("/").partition("/")
            if kind not in ("exec", "attach", "portforward") or not token or "/" in token:
                self.reply(sock, "404 Not Found", f"{url.path}: not a streaming URL of pyrkt's")
                return
            request = self.cache.consume(token)
            if request is None or request.kind != kind:
                self.reply(sock, "404 Not Found", f"{kind} token not found, used already or expired: ask the "
                           "runtime for a new URL")
                return
            upgrade = headers.get("upgrade", "").lower()
            if upgrade.startswith("spdy"):
                self.serve_spdy(sock, kind, request, method, headers)
                return
            if upgrade != "websocket" or method != "GET" or "sec-websocket-key" not in headers:
                self.reply(sock, "400 Bad Request", "want a WebSocket upgrade (GET, Upgrade: websocket) or a "
                           "SPDY/3.1 one (Upgrade: SPDY/3.1)")
                return
            offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
            known = PORTFORWARD_PROTOCOLS if kind == "portforward" else EXEC_PROTOCOLS
            chosen = next((p for p in known if p in offered), "")
            if not chosen and offered:
                self.reply(sock, "400 Bad Request", f"no subprotocol pyrkt speaks among {offered or 'none'}: "
                           f"want one of {', '.join(known)}")
                return
            answer = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {ws.accept_key(headers['sec-websocket-key'])}\r\n")
            if chosen:
                answer += f"Sec-WebSocket-Protocol: {chosen}\r\n"
            sock.sendall((answer + "\r\n").encode())
            sock.settimeout(None)
            conn = Connection(sock, chosen)
            if kind == "portforward":
                ports = request.ports or tuple(int(p) for p in parse_qs(url.query).get("port", ()) if p.isdigit())
                self.runner.port_forward(conn, request, ports)
            elif kind == "exec":
                self.runner.exec(conn, request)
            else:
                self.runner.attach(conn, request)
        except OSError:
            pass
        except Exception as e:  # noqa: BLE001 (one line on the server's stderr, never a traceback)
            sys.stderr.write(f"pyrkt cri: streaming: internal error: {type(e).__name__}: {e}\n")
        finally:
            sock.close()

    def serve_spdy(self, sock: socket.socket, kind: str, request: Request, method: str,
                   headers: dict[str, str]) -> None:
        """The kubelet's SPDY/3.1 handshake (its messages), then the session."""
        if method not in ("GET", "POST") or "upgrade" not in headers.get("connection", "").lower() or \
                "spdy/3.1" not in headers.get("upgrade", "").lower():
            self.reply(sock, "400 Bad Request", "unable to upgrade: missing upgrade headers in request (want "
                       "Connection: Upgrade, Upgrade: SPDY/3.1)")
            return
        offered = [p.strip() for p in headers.get("x-stream-protocol-version", "").split(",") if p.strip()]
        known = SPDY_PORTFORWARD_PROTOCOLS if kind == "portforward" else SPDY_EXEC_PROTOCOLS
        if not offered:
            self.reply(sock, "400 Bad Request", "unable to upgrade: X-Stream-Protocol-Version is required")
            return
        chosen = next((p for p in offered if p in known), "")
        if not chosen:
            self.reply(sock, "403 Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                       f"[{' '.join(offered)}], server accepts [{' '.join(known)}]",
                       "".join(f"X-Accepted-Stream-Protocol-Versions: {p}\r\n" for p in known))
            return
        sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                      f"X-Stream-Protocol-Version: {chosen}\r\n\r\n").encode())
        sock.settimeout(None)
        if kind == "portforward":
            SpdyForwarder(sock, self.runner, request).run()
            return
        conn = SpdyConnection(sock, chosen, request)
        if not conn.wait_streams(kind):
            return
        if kind == "exec":
            self.runner.exec(conn, request)
        else:
            self.runner.attach(conn, request)


Channels = Connection | SpdyConnection


class ForwardError(PyrktError):
    """A port of the pod not reached: ``message`` for the client; ``close_connection`` as the
    kubelet tells its client (all but a reset or broken connection)."""

    def __init__(self, message: str, close_connection: bool = True) -> None:
        super().__init__(message)
        self.close_connection = close_connection


class Runner:
    """What is run at the other end of a stream: `pyrkt app exec` children, the app's iomux
    sockets, connections made in the pod's network namespace."""

    def __init__(self, config: Config, pyrkt_argv: list[str], find_pod: Callable[[str], Any]) -> None:
        self.config = config
        self.pyrkt_argv = pyrkt_argv
        self.find_pod = find_pod  # sandbox id -> the running pod (its pid)

    # -- exec -------------------------------------------------------------------------------

    def exec(self, conn: Channels, req: Request) -> None:
        argv = [*self.pyrkt_argv, "app", "exec", req.uuid, f"--app={req.app}", *(["--tty"] if req.tty else []),
                "--", *req.cmd]
        conn.opened(req)
        if req.tty:
            code = self._exec_tty(conn, req, argv)
        else:
            code = self._exec_pipes(conn, req, argv)
        status = exit_status(code, list(req.cmd), conn.protocol)
        if status:
            conn.send(ERROR, status)
        conn.close()

    def _exec_pipes(self, conn: Channels, req: Request, argv: list[str]) -> int:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if req.stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE if req.stdout else subprocess.DEVNULL,
                                stderr=subprocess.PIPE if req.stderr else subprocess.DEVNULL,
                                start_new_session=True)
        pumps = [threading.Thread(target=pump, args=(f.fileno(), functools.partial(conn.send, ch)), daemon=True)
                 for f, ch in ((proc.stdout, STDOUT), (proc.stderr, STDERR)) if f is not None]
        for t in pumps:
            t.start()
        threading.Thread(target=self._client_input, args=(conn, proc.stdin, None, proc.pid,
                                                             lambda: proc.poll() is None), daemon=True).start()
        code = proc.wait()
        for t in pumps:
            t.join()
        return code

    def _exec_tty(self, conn: Channels, req: Request, argv: list[str]) -> int:
        try:
            pid, master = spawn_on_pty(argv)
        except OSError:
            return 127  # as a shell says of a command it cannot execute
        exited = threading.Event()
        with os.fdopen(os.dup(master), "wb", buffering=0) as stdin:
            t = threading.Thread(target=pump, args=(master, functools.partial(conn.send, STDOUT)), daemon=True)
            t.start()
            threading.Thread(target=self._client_input, args=(conn, stdin if req.stdin else None, master, pid,
                                                                 lambda: not exited.is_set()),
                             daemon=True).start()
            _, status = os.waitpid(pid, 0)
            exited.set()
            t.join()
        os.close(master)
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)

    @staticmethod
    def _client_input(conn: Channels, stdin: Any, tty: int | None, pid: int, alive: Callable[[], bool]) -> None:
        """The client's messages: stdin to the command, resizes to its terminal; the client
        gone before the command ended: the command's session killed."""
        if tty is not None:
            wait_raw(tty)
        try:
            for channel, data in conn.messages():
                if channel == STDIN and stdin is not None:
                    try:
                        stdin.write(data)
                        stdin.flush()
                    except (OSError, ValueError):
                        stdin = None
                elif channel == RESIZE and tty is not None:
                    resize(tty, data)
                elif channel == CLOSE_CHANNEL and data[:1] == bytes([STDIN]) and stdin is not None:
                    if tty is not None:
                        stdin.write(b"\x04")  # a terminal's EOF
                    else:
                        stdin.close()
                    stdin = None
        finally:
            if stdin is not None and tty is None:
                try:
                    stdin.close()
                except OSError:
                    pass
            if alive():
                try:
                    os.killpg(pid, signal.SIGHUP)
                except (ProcessLookupError, PermissionError):
                    pass

    # -- attach ------------------------------------------------------------------------------

    def attach(self, conn: Channels, req: Request) -> None:
        """The app's iomux sockets (stream or tty mode, as `pyrkt attach`): its terminal's output
        to stdout, or its stdout and stderr to theirs; the client's stdin to its stdin, resizes
        to its terminal; until its output ends (the app exited) or the client goes."""
        from pyrkt.stage0 import attach as iomux

        try:
            pod, name, served = iomux.endpoints(self.config, req.uuid, req.app)
            wanted = tuple(e for e in served if e == "tty" or getattr(req, e))
            socks = iomux.connect(pod, name, wanted)
        except PyrktError as e:
            conn.send(ERROR, failure_status(str(e), conn.protocol))
            conn.close()
            return
        conn.opened(req)
        source = socks.get("tty") or socks.get("stdin") if req.stdin else None
        outputs = {s.fileno(): STDOUT if e in ("tty", "stdout") else STDERR for e, s in socks.items() if e != "stdin"}
        pumps = [threading.Thread(target=pump, args=(fd, functools.partial(conn.send, ch)), daemon=True)
                 for fd, ch in outputs.items()]
        for t in pumps:
            t.start()
        def resize_app(data: bytes) -> None:
            """Opened for each resize: held open, the app's terminal would outlive the app."""
            app_tty = iomux.open_app_tty(pod, name)
            if app_tty >= 0:
                try:
                    resize(app_tty, data)
                finally:
                    os.close(app_tty)

        reader = threading.Thread(target=self._attach_input, daemon=True, args=(
            conn, source, resize_app if "tty" in socks else None, list(socks.values())))
        reader.start()
        try:
            for t in pumps or [reader]:
                t.join()
            status = exit_status(0, [], conn.protocol)
            if status:
                conn.send(ERROR, status)
            conn.close()
        finally:
            for sock in socks.values():
                sock.close()

    @staticmethod
    def _attach_input(conn: Channels, source: socket.socket | None, resize_app: Callable[[bytes], None] | None,
                      socks: list[socket.socket]) -> None:
        for channel, data in conn.messages():
            if channel == STDIN and source is not None:
                try:
                    source.sendall(data)
                except OSError:
                    source = None
            elif channel == RESIZE and resize_app is not None:
                resize_app(data)
            elif channel == CLOSE_CHANNEL and data[:1] == bytes([STDIN]) and source is not None:
                if resize_app is None:
                    try:
                        source.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                source = None
        for sock in socks:  # the client went away: the output pumps end too
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- port forward ------------------------------------------------------------------------

    def port_forward(self, conn: Connection, req: Request, ports: tuple[int, ...]) -> None:
        for i, port in enumerate(ports):
            conn.send(2 * i, struct.pack("<H", port))
            conn.send(2 * i + 1, struct.pack("<H", port))
        if not ports:
            conn.close(ws.CLOSE_PROTOCOL_ERROR, "no port to forward")
            return
        socks: dict[int, socket.socket] = {}
        for i, port in enumerate(ports):
            try:
                socks[2 * i] = self.dial(req, port)
            except ForwardError as e:
                conn.send(2 * i + 1, str(e).encode())
        pumps = [threading.Thread(target=pump, args=(s.fileno(), functools.partial(conn.send, ch)), daemon=True)
                 for ch, s in socks.items()]
        for t in pumps:
            t.start()
        reader = threading.Thread(target=self._forward_input, args=(conn, socks), daemon=True)
        reader.start()
        for t in pumps:
            t.join()
        for s in socks.values():
            s.close()
        conn.close()

    def dial(self, req: Request, port: int) -> socket.socket:
        """A connection to ``port`` on the pod's own 127.0.0.1, else a ForwardError saying why."""
        try:
            return connect_in(f"/proc/{self.find_pod(req.sandbox)}/ns/net", port)
        except (OSError, PyrktError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            reset = isinstance(e, (BrokenPipeError, ConnectionResetError))
            raise ForwardError(f"error forwarding port {port} to pod {req.sandbox}: cannot connect to "
                               f"127.0.0.1:{port} in its network namespace: {reason}", not reset) from None

    def forward(self, req: Request, port: int, data: spdy.Stream, error: spdy.Stream) -> None:
        """A SPDY stream pair: ``data`` to and from one connection to the port, each side's end
        (FIN) passed on as a half-close; a failure told on ``error`` as the kubelet's JSON. Both
        streams closed at the end."""
        try:
            sock = self.dial(req, port)
        except ForwardError as e:
            say(error, json.dumps({"closeConnection": e.close_connection, "message": str(e)}, separators=(",", ":")) + "\n")
            data.close()
            error.close()
            return
        pumped = threading.Event()
        threading.Thread(target=self._forward_stream_input, args=(data, sock, pumped), daemon=True).start()
        pump(sock.fileno(), data.write)  # to the pod's end of the connection (or the client's reset)
        pumped.set()
        data.close()
        error.close()

    @staticmethod
    def _forward_stream_input(data: spdy.Stream, sock: socket.socket, pumped: threading.Event) -> None:
        """The client's data to the pod; its FIN a half-close, its reset or its end the
        connection's end; the socket closed here once nothing reads it any more."""
        try:
            while chunk := data.read():
                sock.sendall(chunk)
        except OSError:
            pass
        if data.remote_fin and not data.done:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            with data.session.cond:  # until the pod's side ended too, or the client resets or goes
                data.session.cond.wait_for(lambda: data.done)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        pumped.wait()
        sock.close()

    @staticmethod
    def _forward_input(conn: Connection, socks: dict[int, socket.socket]) -> None:
        for channel, data in conn.messages():
            s = socks.get(channel)
            if s is not None:
                try:
                    s.sendall(data)
                except OSError:
                    pass
        for s in socks.values():  # the client went away: so do the connections
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def pump(fd: int, send: Callable[[bytes], None]) -> None:
    """``fd``'s bytes to ``send`` (a channel, a stream) until its end (a pty's EIO included)."""
    while True:
        try:
            select.select([fd], [], [])
            data = os.read(fd, CHUNK)
        except OSError:
            return
        if not data:
            return
        try:
            send(data)
        except OSError:
            return


def spawn_on_pty(argv: list[str]) -> tuple[int, int]:
    """``argv`` started on a new pty that is its controlling terminal (in a session of its own),
    without forking this process: posix_spawn runs neither Python nor any fork handler in the
    child, where a fork of a threaded gRPC server could deadlock on a lock another thread held
    (DESIGN: the server does not fork). Returns the child's pid and the pty's master
    (close-on-exec); OSError if the command cannot be started."""
    master, slave = os.openpty()
    try:
        # a session leader without a terminal gets the first one it opens as its controlling one
        pid = os.posix_spawn(argv[0], argv, os.environ, setsid=True, setsigmask=(),
                             setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),  # as subprocess restores them
                             file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.ttyname(slave), os.O_RDWR, 0),
                                           (os.POSIX_SPAWN_DUP2, 0, 1), (os.POSIX_SPAWN_DUP2, 0, 2)])
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return pid, master


def wait_raw(master: int, timeout: float = 10.0) -> None:
    """Until `app exec --tty` has made its terminal raw (ours: a pty's two ends share their
    modes): it flushes what was typed before, so the client's first bytes wait for that."""
    import termios

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not termios.tcgetattr(master)[3] & termios.ICANON:
                time.sleep(0.05)  # its window size copied and SIGWINCH followed, right after
                return
        except termios.error:
            return
        time.sleep(0.01)


def resize(tty: int, data: bytes) -> None:
    import fcntl
    import termios

    try:
        size = json.loads(data)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return
    if 0 < width < 1 << 16 and 0 < height < 1 << 16:
        fcntl.ioctl(tty, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def connect_in(netns: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` made in the network namespace ``netns``: from a
    thread of its own that joins it (a namespace is per thread) and ends; the socket stays in
    the namespace it was made in."""
    out: list[socket.socket] = []
    err: list[OSError] = []

    def connect() -> None:
        from pyrkt.kernel.api import LinuxKernel
        from pyrkt.kernel.namespaces import CLONE_NEWNET

        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                LinuxKernel().setns(fd, CLONE_NEWNET, netns)
            finally:
                os.close(fd)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                s.settimeout(10)
                s.connect(("127.0.0.1", port))
                s.settimeout(None)
            except OSError:
                s.close()
                raise
            out.append(s)
        except OSError as e:
            err.append(e)
        except Exception as e:  # noqa: BLE001 (a KernelError: said on the port's error channel)
            err.append(OSError(0, str(e)))

    t = threading.Thread(target=connect, name="cri-netns", daemon=True)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


def check_exec(cmd: list[str], tty: bool, stdin: bool, stdout: bool, stderr: bool) -> None:
    """The kubelet's own checks of an exec or attach request."""
    if not (stdin or stdout or stderr):
        raise UsageError("one of stdin, stdout, or stderr must be set")
    if tty and stderr:
        raise UsageError("tty and stderr cannot both be true: a terminal carries both")
