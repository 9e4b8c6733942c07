"""Registering a pod with the metadata service of its data dir (`run --mds-register`).

A registration is a file: the pod's token in ``$P/mds-token`` (root only). The service
(`pyrkt metadata-service`, ``api.metadata``) finds a pod by that file in ``pods/run/``, so a
service started again, or after the pod, serves it without being told again. The unix socket
``<data dir>/metadata-svc/registration.sock`` is how stage0 learns that a service runs, and its
TCP port: ``PUT /pods/<uuid>`` answers once the service sees the pod's token.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from pyrkt.config import Config
from pyrkt.errors import PyrktError
from pyrkt.kernel import fs
from pyrkt.model import abi

SERVICE_DIR = "metadata-svc"  # under the data dir: the socket, the service's HMAC key
SOCKET = "registration.sock"
HMAC_KEY = "hmac-key"
TIMEOUT = 5.0


def service_dir(data_dir: str) -> str:
    return os.path.join(data_dir, SERVICE_DIR)


def socket_path(data_dir: str) -> str:
    return os.path.join(service_dir(data_dir), SOCKET)


@contextlib.contextmanager
def short_socket_path(data_dir: str) -> Iterator[str]:
    """The socket's path through ``/proc/self/fd`` of the service dir, for bind and connect: a unix
    socket's path is at most 107 bytes, a data dir's may be longer. OSError if the dir is missing."""
    dir_fd = os.open(service_dir(data_dir), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{dir_fd}/{SOCKET}"
    finally:
        os.close(dir_fd)


def unreachable(config: Config, why: str) -> PyrktError:
    return PyrktError(f"--mds-register: could not reach the metadata service ({socket_path(config.data_dir)}: {why}); "
                      "start `pyrkt metadata-service` for this data dir, or run without --mds-register")


def _connect(config: Config) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    s.settimeout(TIMEOUT)
    try:
        with short_socket_path(config.data_dir) as path:
            s.connect(path)
    except OSError as e:
        s.close()
        raise unreachable(config, e.strerror or str(e)) from None
    return s


def check_reachable(config: Config) -> None:
    """Fail now, before a pod is made or moved, when no service listens (as rkt's run-prepared)."""
    _connect(config).close()


def request(config: Config, method: str, path: str) -> tuple[int, str]:
    """One HTTP/1.0 request over the registration socket: (status, body)."""
    with _connect(config) as s:
        try:
            s.sendall(f"{method} {path} HTTP/1.0\r\nHost: metadata-svc\r\nContent-Length: 0\r\n\r\n".encode())
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except OSError as e:
            raise unreachable(config, e.strerror or str(e)) from None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[1].isdigit():
        raise unreachable(config, "not an HTTP answer")
    return int(status[1]), body.decode("utf-8", "replace").strip()


def register(config: Config, pod_dir: str, uuid: str) -> tuple[str, int]:
    """Give the pod a token (128 random bits, as rkt) and have the service confirm it sees it;
    returns (token, the service's TCP port). The token file stays on failure: the caller
    discards the pod."""
    import secrets

    token = secrets.token_hex(16)
    fs.atomic_write(os.path.join(pod_dir, abi.MDS_TOKEN), token + "\n", mode=0o600, sync=False)
    code, body = request(config, "PUT", f"/pods/{uuid}")
    if code != 200 or not body.isdigit():
        raise PyrktError(f"--mds-register: the metadata service refused pod {uuid}: {code} {body}")
    return token, int(body)
