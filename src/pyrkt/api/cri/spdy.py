"""SPDY/3.1 as Kubernetes' streaming uses it, on a blocking socket: the frame codec and a
server's session (streams the client opens, flow control, pings).

Frames (draft-mbelshe-httpbis-spdy-00 as amended by SPDY/3.1): a control frame is 8 bytes of
head (the control bit, version 3, its type; 8 bits of flags, 24 of length) and its payload; a
data frame is a 31-bit stream id, flags (FIN) and length, then the data. Name/value header
blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib-compressed with the protocol's dictionary, one
zlib stream per direction for the whole connection, each block ended by a sync flush.

Flow control (SPDY/3.1): every stream and the session have a window of 64 KiB per direction
(a stream's initial one changed by the peer's SETTINGS); data sent uses both up, the peer's
WINDOW_UPDATE frames give them back, and ours give the peer's back as its data is consumed.
Kubernetes' own implementation (spdystream) never sends a WINDOW_UPDATE nor reads one: a peer
that has sent neither a WINDOW_UPDATE nor an initial window in SETTINGS, and whose window is
used up, is given ``GRACE`` seconds to send one; none by then, it is taken for such a peer and
its windows are no longer waited on for the rest of the connection. Data a peer sends beyond
our window waits, unread, until its stream's reader consumes what it has (TCP's back pressure,
as the Go side applies).

Pure but for the socket it is given; unit-tested (tests/unit/api/test_cri_spdy.py).
"""

from __future__ import annotations

import collections
import socket
import struct
import sys
import threading
import time
import zlib
from collections.abc import Callable

VERSION = 3
DATA, SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 0, 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED, FRAME_TOO_LARGE = 7, 8, 9, 11
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2
SETTINGS_INITIAL_WINDOW_SIZE = 7
INITIAL_WINDOW = 64 << 10
MAX_WINDOW = (1 << 31) - 1
MAX_STREAM_ID = (1 << 31) - 1
MAX_DATA_FRAME = (1 << 24) - 1  # a data frame's 24-bit length
MAX_CONTROL_FRAME = 1 << 20  # a control frame longer than this is refused (a header block is far smaller)
MAX_HEADER_BLOCK = 1 << 18  # decompressed
SEND_CHUNK = 32 << 10  # the most data one frame of ours carries
GRACE = 0.5  # seconds a peer not yet seen to do flow control has to give back a used-up window


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (its zlib id, its Adler-32, is 0xe3c6a7c2): the
    words below each after its 32-bit length, then the rest as it stands."""
    words = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date etag "
             "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
             "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
             "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning "
             "www-authenticate method get status 200_OK version HTTP/1.1 url public set-cookie keep-alive "
             "origin").split()  # "_": a space within a word
    codes = ("100 101 201 202 205 206 300 302 303 304 305 306 307 402 405 406 407 408 409 410 411 412 413 414 "
             "415 416 417 502 504 505").split()
    reasons = ("203 Non-Authoritative Information", "204 No Content", "301 Moved Permanently", "400 Bad Request",
               "401 Unauthorized", "403 Forbidden", "404 Not Found", "500 Internal Server Error",
               "501 Not Implemented", "503 Service Unavailable")
    months = "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec "
    days = "Mon, Tue, Wed, Thu, Fri, Sat, Sun, "
    types = "text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    rest = (months + "00:00:00 " + days + "GMTchunked," + types + "publicprivatemax-age=gzip,deflate,sdch"
            "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return (b"".join(struct.pack(">I", len(w)) + w.replace("_", " ").encode() for w in words)
            + "".join(codes).encode() + "".join(reasons).encode() + rest.encode())


DICTIONARY = _dictionary()

Headers = dict[str, list[str]]


class ProtocolError(Exception):
    """The peer broke SPDY's rules for the whole session (answered with GOAWAY, then the end)."""


class StreamError(Exception):
    """A frame wrong for its stream alone (answered with RST_STREAM ``status``)."""

    def __init__(self, message: str, stream_id: int, status: int) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.status = status


class ConnectionEnded(Exception):
    """The peer's end of the connection, between frames or within one."""


class StreamClosed(ConnectionError):
    """A write to a stream the peer reset, or on a session that has ended."""


class Frame:
    """A frame read: ``type`` (DATA for a data frame), ``flags``, ``stream_id`` and, as the type
    has them, ``data``, ``headers``, ``status`` (RST_STREAM, GOAWAY), ``value`` (a PING's id, a
    WINDOW_UPDATE's delta, GOAWAY's last good stream), ``settings`` (id: value)."""

    __slots__ = ("type", "flags", "stream_id", "data", "headers", "status", "value", "settings")

    def __init__(self, type: int, flags: int = 0, stream_id: int = 0, *, data: bytes = b"",
                 headers: Headers | None = None, status: int = 0, value: int = 0,
                 settings: dict[int, int] | None = None) -> None:
        self.type = type
        self.flags = flags
        self.stream_id = stream_id
        self.data = data
        self.headers = headers if headers is not None else {}
        self.status = status
        self.value = value
        self.settings = settings if settings is not None else {}

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)

    def __repr__(self) -> str:
        return f"Frame(type={self.type}, flags={self.flags:#x}, stream_id={self.stream_id})"


# -- header blocks ------------------------------------------------------------------------------

def pack_headers(headers: Headers) -> bytes:
    """The uncompressed block: the count, then each lower-case name and its values joined by NUL,
    each after its 32-bit length."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\0".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def unpack_headers(block: bytes) -> Headers:
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if n > len(block) - pos:
            raise ProtocolError("a header block shorter than its lengths say")
        pos += n
        return block[pos - n:pos]

    count = struct.unpack(">I", take(4))[0]
    if count > len(block) // 8:
        raise ProtocolError(f"a header block of {count} headers in {len(block)} bytes")
    headers: Headers = {}
    for _ in range(count):
        name = take(struct.unpack(">I", take(4))[0]).decode("latin-1")
        value = take(struct.unpack(">I", take(4))[0]).decode("latin-1")
        if not name or name != name.lower():
            raise ProtocolError(f"a header name empty or not lower case: {name!r}")
        if name in headers:
            raise ProtocolError(f"header {name!r} twice in a block")
        headers[name] = value.split("\0")
    if pos != len(block):
        raise ProtocolError("bytes after a header block's last header")
    return headers


# -- the codec ----------------------------------------------------------------------------------

class Encoder:
    """Frames to send; header blocks go through this direction's one compressor."""

    def __init__(self) -> None:
        self.compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8,
                                           zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def block(self, headers: Headers) -> bytes:
        return self.compressor.compress(pack_headers(headers)) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def control(type: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, type, (flags << 24) | len(payload)) + payload

    def syn_stream(self, stream_id: int, headers: Headers, *, fin: bool = False, priority: int = 0,
                   associated: int = 0, unidirectional: bool = False) -> bytes:
        flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
        return self.control(SYN_STREAM, flags, struct.pack(">IIBB", stream_id, associated, priority << 5, 0)
                            + self.block(headers))

    def syn_reply(self, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
        return self.control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + self.block(headers))

    def headers(self, stream_id: int, headers: Headers, *, fin: bool = False) -> bytes:
        return self.control(HEADERS, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + self.block(headers))

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self.control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def settings(self, values: dict[int, int]) -> bytes:
        return self.control(SETTINGS, 0, struct.pack(">I", len(values))
                            + b"".join(struct.pack(">II", k & 0xFFFFFF, v) for k, v in values.items()))

    def ping(self, ping_id: int) -> bytes:
        return self.control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_good: int, status: int = GOAWAY_OK) -> bytes:
        return self.control(GOAWAY, 0, struct.pack(">II", last_good, status))

    def window_update(self, stream_id: int, delta: int) -> bytes:
        return self.control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))

    @staticmethod
    def data(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        if len(data) > MAX_DATA_FRAME:
            raise ValueError(f"a data frame of {len(data)} bytes: at most {MAX_DATA_FRAME}")
        return struct.pack(">II", stream_id & MAX_STREAM_ID, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


def read_exact(recv: Callable[[int], bytes], n: int, *, started: bool = True) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = recv(min(n - len(out), 1 << 16))
        if not chunk:
            raise ConnectionEnded("the connection ended" + (" within a frame" if out or started else ""))
        out += chunk
    return bytes(out)


class Decoder:
    """Frames read from a connection; header blocks through this direction's one decompressor."""

    def __init__(self, recv: Callable[[int], bytes], *, max_data: int = MAX_DATA_FRAME,
                 max_control: int = MAX_CONTROL_FRAME) -> None:
        self.recv = recv
        self.max_data = max_data
        self.max_control = max_control
        self.decompressor = zlib.decompressobj(15, DICTIONARY)

    def block(self, data: bytes) -> Headers:
        try:
            block = self.decompressor.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise ProtocolError(f"a header block that does not decompress: {e}") from None
        if self.decompressor.unconsumed_tail:
            raise ProtocolError(f"a header block of more than {MAX_HEADER_BLOCK} bytes")
        return unpack_headers(block)

    def read_frame(self) -> Frame:
        head = read_exact(self.recv, 8, started=False)
        word, length = struct.unpack(">II", head)
        flags, length = length >> 24, length & 0xFFFFFF
        if not word & 0x80000000:
            if length > self.max_data:
                raise ProtocolError(f"a data frame of {length} bytes: at most {self.max_data}")
            stream_id = word & MAX_STREAM_ID
            data = read_exact(self.recv, length)
            if stream_id == 0:
                raise ProtocolError("a data frame on stream 0")
            return Frame(DATA, flags, stream_id, data=data)
        version, type = (word >> 16) & 0x7FFF, word & 0xFFFF
        if length > self.max_control:
            raise ProtocolError(f"a control frame of {length} bytes: at most {self.max_control}")
        payload = read_exact(self.recv, length)
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}: only {VERSION} is spoken")
        return self.control(type, flags, payload)

    def control(self, type: int, flags: int, p: bytes) -> Frame:
        def need(n: int, exact: bool = True) -> None:
            if len(p) < n or (exact and len(p) != n):
                raise ProtocolError(f"a control frame of type {type} and {len(p)} bytes: want "
                                    f"{'' if exact else 'at least '}{n}")

        if type == SYN_STREAM:
            need(10, exact=False)
            stream_id, associated, priority = struct.unpack(">IIB", p[:9])
            # the block is decompressed even for a stream refused: the zlib stream goes on
            frame = Frame(type, flags, stream_id & MAX_STREAM_ID, headers=self.block(p[10:]),
                          value=associated & MAX_STREAM_ID, status=priority >> 5)
        elif type in (SYN_REPLY, HEADERS):
            need(4, exact=False)
            frame = Frame(type, flags, struct.unpack(">I", p[:4])[0] & MAX_STREAM_ID, headers=self.block(p[4:]))
        elif type == RST_STREAM:
            need(8)
            stream_id, status = struct.unpack(">II", p)
            frame = Frame(type, flags, stream_id & MAX_STREAM_ID, status=status)
        elif type == SETTINGS:
            need(4, exact=False)
            count = struct.unpack(">I", p[:4])[0]
            need(4 + 8 * count)
            settings = {}
            for i in range(count):
                key, value = struct.unpack(">II", p[4 + 8 * i:12 + 8 * i])
                settings[key & 0xFFFFFF] = value
            frame = Frame(type, flags, settings=settings)
        elif type == PING:
            need(4)
            frame = Frame(type, flags, value=struct.unpack(">I", p)[0])
        elif type == GOAWAY:
            need(8)
            last, status = struct.unpack(">II", p)
            frame = Frame(type, flags, value=last & MAX_STREAM_ID, status=status)
        elif type == WINDOW_UPDATE:
            need(8)
            stream_id, delta = struct.unpack(">II", p)
            frame = Frame(type, flags, stream_id & MAX_STREAM_ID, value=delta & MAX_WINDOW)
        else:
            frame = Frame(type, flags)  # unknown control frames are ignored, as the draft says
        if type in (SYN_STREAM, SYN_REPLY, HEADERS, RST_STREAM) and frame.stream_id == 0:
            raise ProtocolError(f"a control frame of type {type} on stream 0")
        return frame


# -- a server's session -------------------------------------------------------------------------

class Stream:
    """A stream the client opened: its SYN_STREAM's ``headers``; ``read`` what it sends until its
    FIN (or a reset, or the session's end: then ``reset`` or ``session.ended`` says so),
    ``write`` to it (waiting for windows), ``close`` our half (FIN)."""

    def __init__(self, session: Session, stream_id: int, headers: Headers, *, remote_fin: bool,
                 local_fin: bool) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.remote_fin = remote_fin  # the peer sent its FIN
        self.local_fin = local_fin  # we sent ours
        self.reset = False  # either side reset it
        self.discard = False  # nobody reads it: its data is dropped (and its window given back)
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.send_window = session.initial_send_window
        self.unacked = 0  # consumed, not yet given back with a WINDOW_UPDATE

    def header(self, name: str) -> str:
        return self.headers.get(name, [""])[0]

    @property
    def done(self) -> bool:
        return self.reset or self.session.ended or (self.remote_fin and self.local_fin)

    def read(self) -> bytes:
        """The next data the peer sent; b"" at its FIN, a reset or the session's end."""
        s = self.session
        with s.cond:
            while not self.chunks and not (self.remote_fin or self.reset or s.ended):
                s.cond.wait()
            if not self.chunks:
                return b""
            data = self.chunks.popleft()
            self.buffered -= len(data)
            s.cond.notify_all()
        s.consumed(self, len(data))
        return data

    def write(self, data: bytes, *, fin: bool = False) -> None:
        s = self.session
        view = memoryview(data)
        while True:
            n = s.reserve(self, len(view))
            last = n == len(view)
            s.send(s.encoder.data(self.id, bytes(view[:n]), fin=fin and last))
            view = view[n:]
            if last:
                break
        if fin:
            s.local_closed(self)

    def close(self) -> None:
        """Our half closed (an empty data frame with FIN), once; nothing on a stream reset."""
        with self.session.cond:
            if self.local_fin or self.reset or self.session.ended:
                return
        try:
            self.write(b"", fin=True)
        except OSError:
            pass

    def cancel(self, status: int = CANCEL) -> None:
        self.session.reset_stream(self, status)


class Session:
    """A server's end of an upgraded connection. ``on_stream`` is called (from the reading
    thread, before any data of the stream is read) with each stream the client opens: None
    accepts it (SYN_REPLY, then ``on_reply`` is called with it: from then on, data written to it
    reaches the client), else a reason to refuse it (RST_STREAM REFUSED_STREAM)."""

    def __init__(self, sock: socket.socket, on_stream: Callable[[Stream], str | None], *,
                 on_reply: Callable[[Stream], None] | None = None, recv_window: int = INITIAL_WINDOW,
                 grace: float = GRACE) -> None:
        self.sock = sock
        self.on_stream = on_stream
        self.on_reply = on_reply
        self.recv_window = recv_window  # what we let the peer send ahead, per stream and in all
        self.grace = grace
        self.encoder = Encoder()
        self.decoder = Decoder(sock.recv)
        self.wlock = threading.Lock()  # frames whole and in order (the compressor's state too)
        self.cond = threading.Condition()  # streams, windows, the session's state
        self.streams: dict[int, Stream] = {}
        self.last_peer_stream = 0
        self.initial_send_window = INITIAL_WINDOW
        self.send_window = INITIAL_WINDOW  # the session's, towards the peer
        self.unacked = 0
        self.flow_control: bool | None = None  # the peer takes part: seen to, seen not to, not yet known
        self.going_away = False  # the peer's GOAWAY, or ours: no new streams
        self.ended = False  # the connection is over
        self.error = ""
        self.reader = threading.Thread(target=self.read_loop, name="cri-spdy", daemon=True)

    def start(self) -> None:
        self.reader.start()

    # -- sending --------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        with self.wlock:
            if self.ended:
                raise StreamClosed("the SPDY session has ended")
            self.sock.sendall(frame)

    def send_headers_frame(self, make: Callable[[], bytes]) -> None:
        """A frame with a header block: compressed under the write lock, so that the peer's
        decompressor sees the blocks in the order they were compressed."""
        with self.wlock:
            if self.ended:
                raise StreamClosed("the SPDY session has ended")
            self.sock.sendall(make())

    def reserve(self, stream: Stream, want: int) -> int:
        """How much of ``want`` bytes may go now (at least 1 unless ``want`` is 0), taken off
        the windows; waits for windows as the class's docstring says."""
        deadline = 0.0
        with self.cond:
            while True:
                if stream.reset or self.ended:
                    raise StreamClosed(f"stream {stream.id} is reset" if stream.reset else "the SPDY session has ended")
                if stream.local_fin:
                    raise StreamClosed(f"stream {stream.id} is closed already")
                if want == 0:
                    return 0
                room = min(stream.send_window, self.send_window)
                if room > 0 or self.flow_control is False:
                    n = min(want, SEND_CHUNK, room) if room > 0 else min(want, SEND_CHUNK)
                    stream.send_window -= n
                    self.send_window -= n
                    return n
                if self.flow_control is None:
                    now = time.monotonic()
                    deadline = deadline or now + self.grace
                    if now >= deadline:
                        self.flow_control = False
                        continue
                    self.cond.wait(deadline - now)
                else:
                    self.cond.wait()

    def local_closed(self, stream: Stream) -> None:
        with self.cond:
            stream.local_fin = True
            self.forget_if_done(stream)
            self.cond.notify_all()

    def consumed(self, stream: Stream, n: int) -> None:
        """``n`` bytes of the peer's data read: its windows given back once half is used."""
        updates = []
        with self.cond:
            stream.unacked += n
            self.unacked += n
            if stream.unacked >= self.recv_window // 2 and not stream.remote_fin and not stream.reset:
                updates.append((stream.id, stream.unacked))
                stream.unacked = 0
            if self.unacked >= self.recv_window // 2:
                updates.append((0, self.unacked))
                self.unacked = 0
        for stream_id, delta in updates:
            try:
                self.send(self.encoder.window_update(stream_id, delta))
            except OSError:
                return

    def reset_stream(self, stream: Stream, status: int) -> None:
        with self.cond:
            if stream.reset or self.ended:
                return
            stream.reset = True
            self.forget_if_done(stream)
            self.cond.notify_all()
        try:
            self.send(self.encoder.rst_stream(stream.id, status))
        except OSError:
            pass

    def forget_if_done(self, stream: Stream) -> None:
        if stream.reset or (stream.remote_fin and stream.local_fin):
            self.streams.pop(stream.id, None)

    def goaway(self, status: int = GOAWAY_OK) -> None:
        with self.cond:
            self.going_away = True
            last = self.last_peer_stream
        try:
            self.send(self.encoder.goaway(last, status))
        except OSError:
            pass

    def close(self, timeout: float = 2.0) -> None:
        """GOAWAY, our end of the connection, then the peer's (at most ``timeout`` seconds)."""
        self.goaway()
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.reader.join(timeout)
        self.end("closed")

    def end(self, error: str = "") -> None:
        with self.cond:
            if self.ended:
                return
            self.ended = True
            self.error = error
            self.cond.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait_ended(self, timeout: float | None = None) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.ended, timeout)

    # -- receiving ------------------------------------------------------------------------------

    def read_loop(self) -> None:
        try:
            while True:
                try:
                    self.handle(self.decoder.read_frame())
                except StreamError as e:
                    try:
                        self.send(self.encoder.rst_stream(e.stream_id, e.status))
                    except OSError:
                        return
        except ConnectionEnded:
            self.end()
        except ProtocolError as e:
            self.goaway(GOAWAY_PROTOCOL_ERROR)
            self.end(f"protocol error: {e}")
        except OSError as e:
            self.end(e.strerror or str(e))
        except Exception as e:  # noqa: BLE001 (one line on the server's stderr, never a traceback)
            sys.stderr.write(f"pyrkt cri: streaming: SPDY session: internal error: {type(e).__name__}: {e}\n")
            self.goaway(GOAWAY_INTERNAL_ERROR)
            self.end(f"internal error: {e}")

    def handle(self, f: Frame) -> None:
        if f.type == DATA:
            self.on_data(f)
        elif f.type == SYN_STREAM:
            self.on_syn_stream(f)
        elif f.type == RST_STREAM:
            with self.cond:
                stream = self.streams.get(f.stream_id)
                if stream is not None:
                    stream.reset = True
                    self.forget_if_done(stream)
                    self.cond.notify_all()
        elif f.type == SETTINGS:
            if SETTINGS_INITIAL_WINDOW_SIZE in f.settings:
                value = f.settings[SETTINGS_INITIAL_WINDOW_SIZE]
                if value > MAX_WINDOW:
                    raise ProtocolError(f"an initial window of {value} bytes: at most {MAX_WINDOW}")
                with self.cond:
                    delta = value - self.initial_send_window
                    self.initial_send_window = value
                    self.flow_control = True
                    for stream in self.streams.values():
                        stream.send_window += delta
                    self.cond.notify_all()
        elif f.type == PING:
            if f.value % 2 == 1:  # the client's (odd): echoed; ours (even) we never send
                self.send(self.encoder.ping(f.value))
        elif f.type == GOAWAY:
            with self.cond:
                self.going_away = True
        elif f.type == HEADERS:
            with self.cond:
                stream = self.streams.get(f.stream_id)
                if stream is None:
                    raise StreamError(f"HEADERS for stream {f.stream_id}, not open", f.stream_id, INVALID_STREAM)
                for name, values in f.headers.items():
                    stream.headers.setdefault(name, []).extend(values)
                if f.fin:
                    self.remote_closed(stream)
        elif f.type == WINDOW_UPDATE:
            self.on_window_update(f)
        elif f.type == SYN_REPLY:
            raise StreamError(f"SYN_REPLY for stream {f.stream_id}: the server opened none", f.stream_id,
                              INVALID_STREAM)

    def remote_closed(self, stream: Stream) -> None:
        stream.remote_fin = True
        self.forget_if_done(stream)
        self.cond.notify_all()

    def on_syn_stream(self, f: Frame) -> None:
        with self.cond:
            if f.stream_id % 2 == 0 or f.stream_id <= self.last_peer_stream:
                raise ProtocolError(f"stream {f.stream_id} opened by the client after {self.last_peer_stream}: "
                                    "its streams are odd and increase")
            self.last_peer_stream = f.stream_id
            if self.going_away:
                raise StreamError(f"stream {f.stream_id} opened after GOAWAY", f.stream_id, REFUSED_STREAM)
            stream = Stream(self, f.stream_id, f.headers, remote_fin=f.fin,
                            local_fin=bool(f.flags & FLAG_UNIDIRECTIONAL))
        refused = self.on_stream(stream)
        if refused is not None:
            raise StreamError(refused, f.stream_id, REFUSED_STREAM)
        with self.cond:
            self.streams[stream.id] = stream
        self.send_headers_frame(lambda: self.encoder.syn_reply(stream.id, {}, fin=stream.local_fin))
        if self.on_reply is not None:
            self.on_reply(stream)

    def on_data(self, f: Frame) -> None:
        with self.cond:
            stream = self.streams.get(f.stream_id)
            if stream is None:
                status = STREAM_ALREADY_CLOSED if f.stream_id <= self.last_peer_stream else INVALID_STREAM
                raise StreamError(f"data for stream {f.stream_id}, not open", f.stream_id, status)
            if stream.remote_fin:
                raise StreamError(f"data for stream {f.stream_id} after its FIN", f.stream_id, STREAM_ALREADY_CLOSED)
            keep = bool(f.data) and not stream.discard
            if keep:
                # beyond the window given (a peer that does no flow control): wait for the reader
                while stream.buffered >= self.recv_window and not (stream.reset or stream.discard or self.ended):
                    self.cond.wait()
                keep = not (stream.reset or stream.discard)
            if keep:
                stream.chunks.append(f.data)
                stream.buffered += len(f.data)
            if f.fin:
                self.remote_closed(stream)
            self.cond.notify_all()
        if f.data and not keep:
            self.consumed(stream, len(f.data))

    def on_window_update(self, f: Frame) -> None:
        with self.cond:
            self.flow_control = True
            if f.stream_id == 0:
                if f.value == 0 or self.send_window + f.value > MAX_WINDOW:
                    raise ProtocolError(f"a session window update of {f.value}: the window would be out of range")
                self.send_window += f.value
            else:
                stream = self.streams.get(f.stream_id)
                if stream is None:
                    return  # a stream done with: the update came late
                if f.value == 0 or stream.send_window + f.value > MAX_WINDOW:
                    stream.reset = True
                    self.forget_if_done(stream)
                    self.cond.notify_all()
                    raise StreamError(f"a window update of {f.value} for stream {f.stream_id}", f.stream_id,
                                      FLOW_CONTROL_ERROR)
                stream.send_window += f.value
            self.cond.notify_all()
