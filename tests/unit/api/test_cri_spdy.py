"""SPDY/3.1 as the CRI streaming server speaks it (spdy.py): the frame codec, header blocks
compressed in one zlib stream per direction, a server's session (replies, pings, flow control,
a peer's broken frames) and the HTTP handshake's protocol negotiation."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyrkt.api.cri import spdy, streaming


def recv_of(data: bytes) -> Callable[[int], bytes]:
    buf = bytearray(data)

    def recv(n: int) -> bytes:
        out = bytes(buf[:n])
        del buf[:n]
        return out

    return recv


def test_the_header_dictionary_is_the_protocols() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2  # the dictionary id SPDY/3 peers check


def test_every_frame_reads_back_as_written() -> None:
    enc = spdy.Encoder()
    wire = b"".join([
        enc.syn_stream(1, {"streamtype": ["stdin"], "multi": ["a", "b"]}, fin=True, priority=3),
        enc.syn_reply(1, {}),
        enc.headers(3, {"x": ["y"]}, fin=True),
        enc.rst_stream(5, spdy.CANCEL),
        enc.settings({spdy.SETTINGS_INITIAL_WINDOW_SIZE: 1000, 4: 100}),
        enc.ping(7),
        enc.goaway(9, spdy.GOAWAY_PROTOCOL_ERROR),
        enc.window_update(0, 4096),
        enc.data(11, b"payload", fin=True),
        enc.data(13, b""),
    ])
    dec = spdy.Decoder(recv_of(wire))
    f = dec.read_frame()
    assert (f.type, f.stream_id, f.fin, f.status) == (spdy.SYN_STREAM, 1, True, 3)
    assert f.headers == {"streamtype": ["stdin"], "multi": ["a", "b"]}
    f = dec.read_frame()
    assert (f.type, f.stream_id, f.headers, f.fin) == (spdy.SYN_REPLY, 1, {}, False)
    f = dec.read_frame()
    assert (f.type, f.stream_id, f.headers, f.fin) == (spdy.HEADERS, 3, {"x": ["y"]}, True)
    f = dec.read_frame()
    assert (f.type, f.stream_id, f.status) == (spdy.RST_STREAM, 5, spdy.CANCEL)
    f = dec.read_frame()
    assert (f.type, f.settings) == (spdy.SETTINGS, {spdy.SETTINGS_INITIAL_WINDOW_SIZE: 1000, 4: 100})
    f = dec.read_frame()
    assert (f.type, f.value) == (spdy.PING, 7)
    f = dec.read_frame()
    assert (f.type, f.value, f.status) == (spdy.GOAWAY, 9, spdy.GOAWAY_PROTOCOL_ERROR)
    f = dec.read_frame()
    assert (f.type, f.stream_id, f.value) == (spdy.WINDOW_UPDATE, 0, 4096)
    f = dec.read_frame()
    assert (f.type, f.stream_id, f.data, f.fin) == (spdy.DATA, 11, b"payload", True)
    f = dec.read_frame()
    assert (f.type, f.stream_id, f.data, f.fin) == (spdy.DATA, 13, b"", False)
    with pytest.raises(spdy.ConnectionEnded):
        dec.read_frame()


def test_the_wire_format_of_a_control_and_a_data_frame() -> None:
    assert spdy.Encoder().ping(1) == bytes.fromhex("80030006 00000004 00000001")
    assert spdy.Encoder.data(3, b"ab", fin=True) == bytes.fromhex("00000003 01000002 6162")


def test_header_blocks_share_one_compression_context_per_direction() -> None:
    enc = spdy.Encoder()
    headers = {"streamtype": ["stdout"], "port": ["8080"], "requestid": ["0"]}
    frames = [enc.syn_stream(i, headers) for i in (1, 3, 5)]
    assert len(frames[1]) < len(frames[0])  # the second block refers back to the first
    dec = spdy.Decoder(recv_of(b"".join(frames)))
    assert [dec.read_frame().headers for _ in frames] == [headers] * 3
    fresh = spdy.Decoder(recv_of(frames[1]))  # out of its stream, the block means nothing
    with pytest.raises(spdy.ProtocolError):
        fresh.read_frame()


def control(type: int, payload: bytes, version: int = 3, flags: int = 0) -> bytes:
    return struct.pack(">HHI", 0x8000 | version, type, (flags << 24) | len(payload)) + payload


@pytest.mark.parametrize(("wire", "message"), [
    (control(spdy.PING, b"\0\0\0\1", version=2), "SPDY version 2"),
    (control(spdy.RST_STREAM, b"\0\0\0\1"), "want 8"),
    (control(spdy.WINDOW_UPDATE, b"\0" * 12), "want 8"),
    (control(spdy.SETTINGS, b"\0\0\0\5"), "want 44"),
    (control(spdy.SYN_STREAM, b"\0\0\0\1\0\0\0\0\0\0" + b"not zlib at all"), "does not decompress"),
    (control(spdy.RST_STREAM, b"\0\0\0\0\0\0\0\1"), "on stream 0"),
    (struct.pack(">II", 0, 3) + b"abc", "a data frame on stream 0"),
    (struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, spdy.MAX_CONTROL_FRAME + 1), "a control frame of 1048577 bytes"),
])
def test_a_malformed_or_oversized_frame_is_a_protocol_error(wire: bytes, message: str) -> None:
    with pytest.raises(spdy.ProtocolError, match=message):
        spdy.Decoder(recv_of(wire)).read_frame()


def test_an_oversized_data_frame_is_refused_before_its_payload_is_read() -> None:
    reads: list[int] = []
    recv = recv_of(struct.pack(">II", 1, 1 << 20))

    def counting(n: int) -> bytes:
        reads.append(n)
        return recv(n)

    with pytest.raises(spdy.ProtocolError, match="a data frame of 1048576 bytes: at most 65536"):
        spdy.Decoder(counting, max_data=65536).read_frame()
    assert sum(reads) == 8


def test_header_blocks_that_lie_are_refused() -> None:
    good = spdy.pack_headers({"a": ["b"]})
    assert spdy.unpack_headers(good) == {"a": ["b"]}
    for bad, message in [(good[:-1], "shorter"), (good + b"x", "after"), (struct.pack(">I", 1 << 30), "headers in"),
                         (spdy.pack_headers({"a": ["b"]}).replace(b"a", b"A"), "lower case")]:
        with pytest.raises(spdy.ProtocolError, match=message):
            spdy.unpack_headers(bad)
    bomb = zlib.compressobj(zdict=spdy.DICTIONARY)
    block = bomb.compress(struct.pack(">I", 1) + b"\0" * (spdy.MAX_HEADER_BLOCK + 10)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(spdy.ProtocolError, match="a header block of more than"):
        spdy.Decoder(recv_of(control(spdy.HEADERS, b"\0\0\0\1" + block))).read_frame()


def test_a_truncated_frame_is_the_connections_end() -> None:
    with pytest.raises(spdy.ConnectionEnded, match="within a frame"):
        spdy.Decoder(recv_of(spdy.Encoder().ping(1)[:6])).read_frame()


class Peer:
    """The client's end of a session, with our own codec."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.enc = spdy.Encoder()
        self.dec = spdy.Decoder(sock.recv)

    def send(self, frame: bytes) -> None:
        self.sock.sendall(frame)

    def frames(self) -> Iterator[spdy.Frame]:
        while True:
            try:
                yield self.dec.read_frame()
            except spdy.ConnectionEnded:
                return

    def next(self, *types: int) -> spdy.Frame:
        for f in self.frames():
            if f.type in types:
                return f
        raise AssertionError(f"the connection ended before a frame of type {types}")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    yield a, b
    a.close()
    b.close()


def session_of(sock: socket.socket, **kw: float) -> tuple[spdy.Session, list[spdy.Stream]]:
    accepted: list[spdy.Stream] = []

    def on_stream(stream: spdy.Stream) -> str | None:
        if stream.header("streamtype") == "bad":
            return "no such stream type"
        accepted.append(stream)
        return None

    session = spdy.Session(sock, on_stream, **kw)  # type: ignore[arg-type]
    session.start()
    return session, accepted


def test_streams_are_replied_to_or_refused_pings_echoed_and_data_read_to_the_fin(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    session, accepted = session_of(server)
    peer = Peer(client)
    peer.send(peer.enc.syn_stream(1, {"streamtype": ["stdin"]}))
    reply = peer.next(spdy.SYN_REPLY)
    assert reply.stream_id == 1 and accepted[0].header("streamtype") == "stdin"
    peer.send(peer.enc.syn_stream(3, {"streamtype": ["bad"]}))
    rst = peer.next(spdy.RST_STREAM)
    assert (rst.stream_id, rst.status) == (3, spdy.REFUSED_STREAM)
    peer.send(peer.enc.ping(5))
    assert peer.next(spdy.PING).value == 5
    peer.send(peer.enc.data(1, b"hello "))
    peer.send(peer.enc.data(1, b"world", fin=True))
    stream = accepted[0]
    assert stream.read() + stream.read() == b"hello world"
    assert stream.read() == b"" and stream.remote_fin and not stream.reset
    stream.write(b"back", fin=True)
    f = peer.next(spdy.DATA)
    assert (f.stream_id, f.data, f.fin) == (1, b"back", True)
    peer.send(peer.enc.data(1, b"late"))  # both halves closed: the stream is gone
    assert peer.next(spdy.RST_STREAM).status == spdy.STREAM_ALREADY_CLOSED
    session.close(timeout=0.1)
    assert session.ended


def test_windows_are_given_back_as_the_peers_data_is_read(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    session, accepted = session_of(server)
    peer = Peer(client)
    peer.send(peer.enc.syn_stream(1, {}))
    peer.next(spdy.SYN_REPLY)
    chunk = b"x" * 16384
    for _ in range(3):
        peer.send(peer.enc.data(1, chunk))
    got = b""
    while len(got) < 3 * len(chunk):
        got += accepted[0].read()
    updates = {}
    while len(updates) < 2:
        f = peer.next(spdy.WINDOW_UPDATE)
        updates[f.stream_id] = f.value
    assert updates == {1: 32768, 0: 32768}  # the stream's and the session's, once half was used
    session.close(timeout=0.1)


def test_the_peers_window_is_honoured_once_it_takes_part_in_flow_control(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    session, accepted = session_of(server)
    peer = Peer(client)
    peer.send(peer.enc.settings({spdy.SETTINGS_INITIAL_WINDOW_SIZE: 10}))
    peer.send(peer.enc.syn_stream(1, {}))
    peer.next(spdy.SYN_REPLY)
    writer = threading.Thread(target=accepted[0].write, args=(b"0123456789abcdefghij",))
    writer.start()
    assert peer.next(spdy.DATA).data == b"0123456789"
    writer.join(0.3)
    assert writer.is_alive()  # the window is used up: it waits
    peer.send(peer.enc.window_update(1, 6))
    assert peer.next(spdy.DATA).data == b"abcdef"
    peer.send(peer.enc.window_update(1, 100))
    assert peer.next(spdy.DATA).data == b"ghij"
    writer.join(5)
    assert not writer.is_alive()
    peer.send(peer.enc.window_update(1, spdy.MAX_WINDOW))  # beyond 2^31-1: the stream's error
    assert peer.next(spdy.RST_STREAM).status == spdy.FLOW_CONTROL_ERROR
    session.close(timeout=0.1)


def test_a_peer_that_never_gives_windows_back_is_not_waited_on_past_the_grace(
        pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    session, accepted = session_of(server, grace=0.2)
    peer = Peer(client)
    peer.send(peer.enc.syn_stream(1, {}))
    peer.next(spdy.SYN_REPLY)
    payload = bytes(range(256)) * 1024  # 256 KiB: four windows' worth
    writer = threading.Thread(target=accepted[0].write, args=(payload,), kwargs={"fin": True})
    writer.start()
    got = b""
    for f in peer.frames():
        got += f.data
        if f.fin:
            break
    writer.join(5)
    assert got == payload and session.flow_control is False
    session.close(timeout=0.1)


def test_a_broken_frame_ends_the_session_with_goaway_and_no_traceback(
        pair: tuple[socket.socket, socket.socket], capsys: pytest.CaptureFixture[str]) -> None:
    server, client = pair
    session, _ = session_of(server)
    peer = Peer(client)
    peer.send(struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, 1 << 23))  # 8 MiB of control frame
    f = peer.next(spdy.GOAWAY)
    assert f.status == spdy.GOAWAY_PROTOCOL_ERROR
    assert session.wait_ended(5)
    assert session.error == "protocol error: a control frame of 8388608 bytes: at most 1048576"
    assert capsys.readouterr().err == ""


def test_streams_must_be_odd_and_increasing(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    session, _ = session_of(server)
    peer = Peer(client)
    peer.send(peer.enc.syn_stream(3, {}))
    peer.next(spdy.SYN_REPLY)
    peer.send(peer.enc.syn_stream(1, {}))
    assert peer.next(spdy.GOAWAY).status == spdy.GOAWAY_PROTOCOL_ERROR
    assert session.wait_ended(5) and "odd and increase" in session.error


class Idle(streaming.Runner):
    def __init__(self) -> None:
        pass


def handshake(url: str, *lines: str) -> tuple[str, list[str]]:
    host, _, rest = url.removeprefix("http://").partition("/")
    h, _, p = host.partition(":")
    with socket.create_connection((h, int(p)), timeout=10) as s:
        s.sendall((f"POST /{rest} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{ln}\r\n" for ln in lines) + "\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    head = answer.decode().split("\r\n\r\n")[0].split("\r\n")
    return head[0], head[1:]


def test_the_handshake_negotiates_the_clients_first_known_protocol() -> None:
    server = streaming.StreamServer("127.0.0.1:0", Idle())
    server.start()
    try:
        def url(kind: str = "exec") -> str:
            if kind == "portforward":
                return server.url(streaming.Request(kind, sandbox="s", ports=()))
            return server.url(streaming.Request(kind, uuid="u", app="a", cmd=("true",), tty=False, stdin=False,
                                                stdout=True, stderr=False))

        upgrade = ("Connection: Upgrade", "Upgrade: SPDY/3.1")
        status, headers = handshake(url(), *upgrade, "X-Stream-Protocol-Version: v9.channel.k8s.io",
                                    "X-Stream-Protocol-Version: v3.channel.k8s.io, v4.channel.k8s.io")
        assert status == "HTTP/1.1 101 Switching Protocols"
        assert "X-Stream-Protocol-Version: v3.channel.k8s.io" in headers and "Upgrade: SPDY/3.1" in headers
        status, headers = handshake(url(), *upgrade, "X-Stream-Protocol-Version: v9.channel.k8s.io")
        assert status == "HTTP/1.1 403 Forbidden"
        assert "X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io" in headers
        status, _ = handshake(url(), *upgrade)
        assert status == "HTTP/1.1 400 Bad Request"
        status, _ = handshake(url(), "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: v4.channel.k8s.io")
        assert status == "HTTP/1.1 400 Bad Request"  # no Connection: Upgrade
        status, headers = handshake(url("portforward"), *upgrade, "X-Stream-Protocol-Version: portforward.k8s.io")
        assert status == "HTTP/1.1 101 Switching Protocols" and "X-Stream-Protocol-Version: portforward.k8s.io" in headers
    finally:
        server.stop()


def test_exec_over_spdy_through_the_shared_back_end(tmp_path: Path) -> None:
    """`pyrkt app exec` stood in for by a script that runs what follows its ``--``: the exec's
    streams, its status on the error stream, and a client gone before its command ends ends it."""
    shim = tmp_path / "app-exec"
    shim.write_text('#!/bin/sh\nwhile [ "$1" != -- ]; do shift; done; shift; exec "$@"\n')
    shim.chmod(0o755)
    server = streaming.StreamServer("127.0.0.1:0", streaming.Runner(None, [str(shim)], lambda sid: 0))  # type: ignore[arg-type]
    server.start()
    try:
        def exec_url(*cmd: str, stdin: bool = False) -> str:
            return server.url(streaming.Request("exec", uuid="u", app="a", cmd=cmd, tty=False, stdin=stdin,
                                                stdout=True, stderr=True))

        def connect(url: str) -> Peer:
            host, _, rest = url.removeprefix("http://").partition("/")
            s = socket.create_connection(("127.0.0.1", int(host.rpartition(":")[2])), timeout=10)
            s.sendall(f"POST /{rest} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                      "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(1)
            assert head.startswith(b"HTTP/1.1 101 "), head
            return Peer(s)

        peer = connect(exec_url("sh", "-c", "tr a-z A-Z; echo oops >&2; exit 3", stdin=True))
        for i, kind in enumerate(("error", "stdin", "stdout", "stderr")):
            peer.send(peer.enc.syn_stream(2 * i + 1, {"streamtype": [kind]}))
        peer.send(peer.enc.data(3, b"hello\n", fin=True))
        got: dict[int, bytes] = {}
        fins = set()
        for f in peer.frames():
            if f.type == spdy.DATA:
                got[f.stream_id] = got.get(f.stream_id, b"") + f.data
                if f.fin:
                    fins.add(f.stream_id)
            if f.type == spdy.GOAWAY:
                break
        assert got[5] == b"HELLO\n" and got[7] == b"oops\n"
        assert json.loads(got[1])["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
        assert {1, 5, 7} <= fins
        peer.sock.close()

        marker = tmp_path / "pid"
        peer = connect(exec_url("sh", "-c", f"echo $$ > {marker}.new && mv {marker}.new {marker}; exec sleep 30"))
        for i, kind in enumerate(("error", "stdout", "stderr")):
            peer.send(peer.enc.syn_stream(2 * i + 1, {"streamtype": [kind]}))
        for _ in range(500):
            if marker.exists():
                break
            time.sleep(0.01)
        proc = Path(f"/proc/{marker.read_text().strip()}")
        assert (proc / "cmdline").read_bytes() == b"sleep\x0030\x00"
        peer.sock.close()  # the client gone: its command ends
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.exists():
            time.sleep(0.05)
        assert not proc.exists()
    finally:
        server.stop()
