"""rkt's metadata service (`pyrkt metadata-service`): the appc metadata API for apps of pods run
with ``--mds-register``, over HTTP on a TCP port, and stage0's registration socket.

Apps call ``$AC_METADATA_URL/acMetadata/v1/...``; the URL's path starts with their pod's token
(appc's advice, rkt's design), which the service finds in ``pods/run/<uuid>/mds-token``: the
service keeps no pod in memory, so it can be restarted while pods run. Its HMAC key (64 random
bytes, as rkt) is kept in ``<data dir>/metadata-svc/hmac-key``, root only, so signatures stay
verifiable across restarts.

The stdlib's ``http.server`` is enough: a handful of small GET/POST endpoints, local clients,
no TLS, and an optional long-running process that is never on the run path; no HTTP framework
is worth a dependency here. Threads, not forks: each request only reads files.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import socketserver
import threading
import urllib.parse
import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from pyrkt.config import Config
from pyrkt.errors import PyrktError
from pyrkt.kernel import fs
from pyrkt.model import abi
from pyrkt.model.names import is_ac_identifier, is_ac_name
from pyrkt.pods.state import Dir
from pyrkt.stage0 import mds

PREFIX = "/acMetadata/v1"
JSON = "application/json"
TEXT = "text/plain; charset=us-ascii"
MAX_BODY = 1 << 20  # a form to sign or verify; more is refused
REQUEST_TIMEOUT = 30.0  # seconds a client may take to send its request
# appc ImageManifest keys: pyrkt's image record (appsinfo/<app>/manifest) adds its own
IMAGE_MANIFEST_KEYS = ("acKind", "acVersion", "name", "labels", "app", "annotations", "dependencies", "pathWhitelist")


class Reply(Exception):
    """An HTTP answer other than 200, with its one-line body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def load_key(data_dir: str) -> bytes:
    """The service's HMAC key, made once per data dir."""
    path = os.path.join(mds.service_dir(data_dir), mds.HMAC_KEY)
    key = fs.read_bytes(path) if os.path.exists(path) else b""
    if len(key) != hashlib.sha512().digest_size:
        key = os.urandom(hashlib.sha512().digest_size)
        fs.atomic_write(path, key, mode=0o600)
    return key


class Pods:
    """The registered pods of one data dir, read from their dirs at every request."""

    def __init__(self, config: Config, key: bytes) -> None:
        self.run_dir = os.path.join(config.pods_dir, Dir.RUN.value)
        self.key = key

    def by_token(self, token: str) -> str:
        """The pod dir whose token this is (401 when none)."""
        if token:
            try:
                names = os.listdir(self.run_dir)
            except FileNotFoundError:
                names = []
            for name in names:
                mine = (fs.read_text(os.path.join(self.run_dir, name, abi.MDS_TOKEN)) or "").strip()
                if mine and hmac.compare_digest(mine.encode(), token.encode()):
                    return os.path.join(self.run_dir, name)
        raise Reply(401, "pod not found")

    def registered(self, uuid: str) -> bool:
        return bool(fs.read_text(os.path.join(self.run_dir, uuid, abi.MDS_TOKEN)))

    def sign(self, uuid: str, content: str) -> bytes:
        """HMAC-SHA512 of the pod's UUID (16 bytes) and the content, as rkt."""
        return hmac.new(self.key, uuidlib.UUID(uuid).bytes + content.encode("latin-1"), hashlib.sha512).digest()


def is_uuid(text: str) -> bool:
    try:
        return str(uuidlib.UUID(text)) == text
    except ValueError:
        return False


def _json_file(path: str) -> Any:
    try:
        return json.loads(fs.read_bytes(path))
    except (OSError, ValueError) as e:
        raise Reply(500, f"cannot read {os.path.basename(path)}: {e}") from None


def _annotation(pairs: list[dict[str, str]], name: str, what: str) -> str:
    if not is_ac_identifier(name):
        raise Reply(400, f"{what} annotation {name!r} is not a valid AC Identifier")
    for pair in pairs:
        if pair.get("name") == name:
            return str(pair.get("value", ""))
    raise Reply(404, f"{what} annotation {name!r} not found")


def merged_annotations(image: list[dict[str, str]], app: list[dict[str, str]]) -> list[dict[str, str]]:
    """The image's annotations, each overridden in place by the pod manifest's app annotation of
    its name, the app's others appended (appc's merge, in the order its validator expects)."""
    out = [dict(a) for a in image]
    for a in app:
        for mine in out:
            if mine.get("name") == a.get("name"):
                mine["value"] = a.get("value", "")
                break
        else:
            out.append(dict(a))
    return out


def pod_get(pod_dir: str, path: str) -> tuple[str, bytes]:
    """A GET below ``/acMetadata/v1`` for the pod of ``pod_dir``: (content type, body)."""
    manifest = _json_file(os.path.join(pod_dir, abi.POD_MANIFEST))
    if path == "/pod/manifest":
        return JSON, json.dumps(manifest).encode()
    if path == "/pod/uuid":
        return TEXT, os.path.basename(pod_dir).encode()
    if path == "/pod/annotations":
        return JSON, json.dumps(manifest.get("annotations") or []).encode()
    if path.startswith("/pod/annotations/"):
        return TEXT, _annotation(manifest.get("annotations") or [], path.removeprefix("/pod/annotations/"),
                                 "pod").encode()
    if not path.startswith("/apps/"):
        raise Reply(404, "not found")
    name, _, rest = path.removeprefix("/apps/").partition("/")
    if not is_ac_name(name):
        raise Reply(400, f"app name {name!r} is not a valid AC Name")
    app = next((a for a in manifest.get("apps") or () if a.get("name") == name), None)
    if app is None:
        raise Reply(404, "app not found")
    if rest == "image/id":
        return TEXT, str(app["image"]["id"]).encode()
    image = _json_file(os.path.join(pod_dir, abi.app_manifest(name)))
    if rest == "image/manifest":
        return JSON, json.dumps({k: image[k] for k in IMAGE_MANIFEST_KEYS if k in image}).encode()
    merged = merged_annotations(image.get("annotations") or [], app.get("annotations") or [])
    if rest == "annotations":
        return JSON, json.dumps(merged).encode()
    if rest.startswith("annotations/"):
        return TEXT, _annotation(merged, rest.removeprefix("annotations/"), "app").encode()
    raise Reply(404, "not found")


class AppHandler(http.server.BaseHTTPRequestHandler):
    """The app-facing API: ``/<token>/acMetadata/v1/...``."""

    server: AppServer
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_TIMEOUT  # a client that stops sending loses its connection, not a thread

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.answer(lambda token, path: pod_get(self.server.pods.by_token(token), path))

    def do_POST(self) -> None:  # noqa: N802
        self.answer(self.post)

    def post(self, token: str, path: str) -> tuple[str, bytes]:
        form = self.form()
        pods = self.server.pods
        if path == "/pod/hmac/sign":
            uuid = os.path.basename(pods.by_token(token))
            content = form.get("content", "")
            if not content:
                raise Reply(400, "content form value not found")
            return TEXT, base64.b64encode(pods.sign(uuid, content))
        if path == "/pod/hmac/verify":  # any pod may verify another's signature (rkt: no token check)
            uuid = form.get("uuid", "")
            if not is_uuid(uuid):
                raise Reply(400, "uuid field missing or malformed")
            if not form.get("content"):
                raise Reply(400, "content field missing")
            try:
                signature = base64.b64decode(form.get("signature", ""), validate=True)
            except ValueError:
                raise Reply(400, "signature field missing or corrupt") from None
            if not hmac.compare_digest(signature, pods.sign(uuid, form["content"])):
                raise Reply(403, "signature does not match")
            return TEXT, b""
        raise Reply(404, "not found")

    def form(self) -> dict[str, str]:
        """The query's and the body's fields, each byte one character (latin-1): what is signed
        is the bytes sent, as rkt's, not a UTF-8 reading that makes every bad byte the same."""
        given = (self.headers.get("Content-Length") or "0").strip()
        if not given.isdigit():
            raise Reply(400, "bad Content-Length")
        length = int(given)
        if length > MAX_BODY:
            raise Reply(413, "form too large")
        body = self.rfile.read(length).decode("latin-1") if length > 0 else ""
        query = urllib.parse.urlsplit(self.path).query
        pairs = (urllib.parse.parse_qsl(query, encoding="latin-1")
                 + urllib.parse.parse_qsl(body, encoding="latin-1"))
        return dict(pairs)

    def answer(self, handle: Callable[[str, str], tuple[str, bytes]]) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        token, _, rest = path.lstrip("/").partition("/")
        shown = f"/<token>/{rest}" if token else path
        if not ("/" + rest).startswith(PREFIX + "/"):
            status, ctype, body = 404, TEXT, b"not found"
        else:
            try:
                ctype, body = handle(token, ("/" + rest).removeprefix(PREFIX))
                status = 200
            except Reply as r:
                status, ctype, body = r.status, TEXT, str(r).encode("ascii", "backslashreplace")
            except TimeoutError:
                raise  # the client stopped sending: http.server closes the connection
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # a pod dir half-written
                status, ctype, body = 500, TEXT, f"internal error: {type(e).__name__}".encode()
                self.server.say(f"{self.command} {shown}: internal error: {type(e).__name__}: {e}")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.say(f"{self.command} {shown} - {status}")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # answer() logs each request, without the token


class RegistrationHandler(http.server.BaseHTTPRequestHandler):
    """stage0's side: ``PUT /pods/<uuid>`` answers the TCP port once the pod's token is there."""

    server: RegistrationServer

    def do_PUT(self) -> None:  # noqa: N802
        uuid = self.path.removeprefix("/pods/")
        ok = self.path.startswith("/pods/") and is_uuid(uuid) and self.server.pods.registered(uuid)
        status, body = (200, str(self.server.port)) if ok else (404, "pod not found or has no token")
        self.send_response(status)
        self.send_header("Content-Type", TEXT)
        self.end_headers()
        self.wfile.write(body.encode())
        self.server.say(f"PUT {self.path} - {status}")

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "registration"  # a unix socket has no client address


class AppServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, pods: Pods, say: Callable[[str], None]) -> None:
        super().__init__(("0.0.0.0", port), AppHandler)  # every host address, as rkt (pods reach their gateway)
        self.pods = pods
        self.say = say


class RegistrationServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, pods: Pods, port: int, say: Callable[[str], None]) -> None:
        super().__init__(path, RegistrationHandler)
        self.pods = pods
        self.port = port
        self.say = say


def serve(config: Config, port: int, *, say: Callable[[str], None], done: threading.Event) -> None:
    """Serve until ``done`` is set."""
    from pyrkt.kernel.lock import FileLock

    where = mds.service_dir(config.data_dir)
    os.makedirs(where, mode=0o700, exist_ok=True)
    lock = FileLock.open(os.path.join(where, "lock"), create=True)
    if not lock.try_exclusive():
        raise PyrktError(f"a metadata service already serves {config.data_dir}")
    try:
        pods = Pods(config, load_key(config.data_dir))
        try:
            app_server = AppServer(port, pods, say)
        except OSError as e:
            raise PyrktError(f"metadata service: cannot listen on port {port}: {e.strerror or e}") from None
        sock = mds.socket_path(config.data_dir)
        fs.unlink_quiet(sock)  # a service killed hard leaves its socket; the lock says none runs
        try:
            with mds.short_socket_path(config.data_dir) as short:
                reg_server = RegistrationServer(short, pods, app_server.server_address[1], say)
        except OSError as e:
            app_server.server_close()
            raise PyrktError(f"metadata service: cannot listen on {sock}: {e.strerror or e}") from None
        threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (app_server, reg_server)]
        for t in threads:
            t.start()
        say(f"metadata service running on port {app_server.server_address[1]} for {config.data_dir}")
        done.wait()
        say("metadata service exiting")
        for s in (reg_server, app_server):
            s.shutdown()
            s.server_close()
        fs.unlink_quiet(sock)
    finally:
        lock.close()
