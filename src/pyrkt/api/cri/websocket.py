"""The little of RFC 6455 (WebSocket) that Kubernetes' streaming protocols need, on a blocking
socket: the opening handshake's accept key, and frames read and written whole.

Small enough for the standard library: no extensions (the kubelet's clients ask for none), no
text frames of our own (every Kubernetes channel message is binary). A client's frames are
masked, a server's are not (the RFC's rule, which ``read_frame`` enforces for a server).
Pure but for the socket it is given; unit-tested (tests/unit/api/test_websocket.py).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
MAX_MESSAGE = 16 << 20  # a message larger than this is refused (a stdin chunk or a port's data is far smaller)


class ProtocolError(Exception):
    """The peer broke the framing rules: the connection is closed with 1002 (or 1009)."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class Closed(Exception):
    """The peer's close frame (``code``, ``reason``), or the connection ended without one (1006)."""

    def __init__(self, code: int = 1006, reason: str = "") -> None:
        super().__init__(f"closed ({code}){': ' + reason if reason else ''}")
        self.code = code
        self.reason = reason


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode()).digest()).decode()


def new_key() -> str:
    """A client's ``Sec-WebSocket-Key``: 16 random bytes, base64."""
    return base64.b64encode(os.urandom(16)).decode()


def apply_mask(mask: bytes, data: bytes) -> bytes:
    if not data:
        return data
    reps = len(data) // 4 + 1
    key = int.from_bytes((mask * reps)[:len(data)], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(len(data), "big")


def encode(opcode: int, payload: bytes, *, mask: bool = False, fin: bool = True) -> bytes:
    """One frame; ``mask``: as a client sends it (a random mask)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(m | n)
    elif n < 1 << 16:
        head.append(m | 126)
        head += struct.pack(">H", n)
    else:
        head.append(m | 127)
        head += struct.pack(">Q", n)
    if mask:
        key = os.urandom(4)
        return bytes(head) + key + apply_mask(key, payload)
    return bytes(head) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode()[:120]


def parse_close(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        return 1005, ""  # no status code present
    return struct.unpack(">H", payload[:2])[0], payload[2:].decode(errors="replace")


def read_exact(recv: Callable[[int], bytes], n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = recv(n - len(out))
        if not chunk:
            raise Closed()
        out += chunk
    return bytes(out)


def read_frame(recv: Callable[[int], bytes], *, masked: bool) -> tuple[bool, int, bytes]:
    """(fin, opcode, payload unmasked) of the next frame; ``masked``: the frames must be
    masked (a server reading a client) or must not be (a client reading a server)."""
    b0, b1 = read_exact(recv, 2)
    if b0 & 0x70:
        raise ProtocolError("reserved bits set: no extension was negotiated")
    fin, opcode = bool(b0 & 0x80), b0 & 0x0F
    if bool(b1 & 0x80) != masked:
        raise ProtocolError("a client's frames must be masked, a server's not")
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(recv, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(recv, 8))[0]
    if opcode >= CLOSE and (n > 125 or not fin):
        raise ProtocolError("a control frame must be final and at most 125 bytes")
    if n > MAX_MESSAGE:
        raise ProtocolError(f"a frame of {n} bytes: more than {MAX_MESSAGE}", CLOSE_TOO_BIG)
    key = read_exact(recv, 4) if masked else b""
    payload = read_exact(recv, n)
    return fin, opcode, apply_mask(key, payload) if masked else payload


class Reader:
    """Whole data messages from a connection: fragments joined, pings answered with ``send``
    (a pong), the peer's close answered and raised as ``Closed``."""

    def __init__(self, recv: Callable[[int], bytes], send: Callable[[bytes], None], *, masked: bool) -> None:
        self.recv = recv
        self.send = send
        self.masked = masked  # the peer's frames are masked: we are the server

    def message(self) -> tuple[int, bytes]:
        """(TEXT or BINARY, the message)."""
        parts: list[bytes] = []
        kind = -1
        while True:
            fin, opcode, payload = read_frame(self.recv, masked=self.masked)
            if opcode == PING:
                self.send(encode(PONG, payload, mask=not self.masked))
                continue
            if opcode == PONG:
                continue
            if opcode == CLOSE:
                code, reason = parse_close(payload)
                try:
                    self.send(encode(CLOSE, payload[:2], mask=not self.masked))
                except OSError:
                    pass
                raise Closed(code, reason)
            if opcode == CONTINUATION:
                if kind < 0:
                    raise ProtocolError("a continuation frame with no message to continue")
            elif opcode in (TEXT, BINARY):
                if kind >= 0:
                    raise ProtocolError("a new message before the last one ended")
                kind = opcode
            else:
                raise ProtocolError(f"unknown opcode {opcode:#x}")
            parts.append(payload)
            if sum(map(len, parts)) > MAX_MESSAGE:
                raise ProtocolError(f"a message of more than {MAX_MESSAGE} bytes", CLOSE_TOO_BIG)
            if fin:
                return kind, b"".join(parts)
