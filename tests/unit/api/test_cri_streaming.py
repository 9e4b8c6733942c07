"""The WebSocket framing of the CRI streaming server (RFC 6455's rules as Kubernetes' channel
protocols use them), its single-use expiring tokens and its status messages."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import sys

import pytest

from pyrkt.api.cri import streaming
from pyrkt.api.cri import websocket as ws


def reader_of(data: bytes, *, masked: bool) -> tuple[ws.Reader, list[bytes]]:
    buf = bytearray(data)
    sent: list[bytes] = []

    def recv(n: int) -> bytes:
        out = bytes(buf[:n])
        del buf[:n]
        return out

    return ws.Reader(recv, sent.append, masked=masked), sent


def test_accept_key_is_the_rfcs_example() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 70000])
def test_masked_client_frames_read_back_whole_at_every_length_encoding(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    frame = ws.encode(ws.BINARY, payload, mask=True)
    assert frame[1] & 0x80  # masked
    reader, _ = reader_of(frame, masked=True)
    assert reader.message() == (ws.BINARY, payload)


def test_server_frames_are_not_masked_and_a_server_refuses_unmasked_ones() -> None:
    frame = ws.encode(ws.BINARY, b"\x01hi")
    assert frame == b"\x82\x03\x01hi"
    reader, _ = reader_of(frame, masked=True)
    with pytest.raises(ws.ProtocolError, match="masked"):
        reader.message()


def test_fragments_are_joined_and_pings_answered_between_them() -> None:
    data = (ws.encode(ws.BINARY, b"\x01ab", mask=True, fin=False) + ws.encode(ws.PING, b"p", mask=True)
            + ws.encode(ws.CONTINUATION, b"cd", mask=True))
    reader, sent = reader_of(data, masked=True)
    assert reader.message() == (ws.BINARY, b"\x01abcd")
    assert sent == [ws.encode(ws.PONG, b"p")]


def test_a_close_is_answered_and_raised_with_its_code() -> None:
    reader, sent = reader_of(ws.encode(ws.CLOSE, ws.close_payload(1000, "bye"), mask=True), masked=True)
    with pytest.raises(ws.Closed) as e:
        reader.message()
    assert (e.value.code, e.value.reason) == (1000, "bye")
    assert sent == [ws.encode(ws.CLOSE, struct.pack(">H", 1000))]


def test_an_ended_connection_is_closed_1006_and_bad_frames_are_protocol_errors() -> None:
    with pytest.raises(ws.Closed) as e:
        reader_of(b"\x82", masked=True)[0].message()
    assert e.value.code == 1006
    with pytest.raises(ws.ProtocolError, match="reserved"):
        reader_of(b"\xc2\x80\x00\x00\x00\x00", masked=True)[0].message()
    with pytest.raises(ws.ProtocolError, match="continuation"):
        reader_of(ws.encode(ws.CONTINUATION, b"x", mask=True), masked=True)[0].message()
    with pytest.raises(ws.ProtocolError, match="control frame"):
        reader_of(ws.encode(ws.PING, b"x" * 126, mask=True), masked=True)[0].message()


def test_a_channel_message_is_its_channel_byte_then_the_data() -> None:
    assert streaming.frame(streaming.STDERR, b"oops") == ws.encode(ws.BINARY, b"\x02oops")


def test_tokens_are_single_use_and_expire_after_a_minute() -> None:
    now = [100.0]
    cache = streaming.TokenCache(clock=lambda: now[0])
    a = cache.insert("first")
    b = cache.insert("second")
    assert a != b and len(a) >= 11
    assert cache.consume(a) == "first"
    assert cache.consume(a) is None  # used
    assert cache.consume("unknown") is None
    now[0] += streaming.TOKEN_TTL
    assert cache.consume(b) is None  # expired


def test_at_most_so_many_tokens_wait() -> None:
    cache = streaming.TokenCache(limit=2, clock=lambda: 0.0)
    cache.insert(1)
    cache.insert(2)
    with pytest.raises(streaming.ResourceExhausted):
        cache.insert(3)


def test_exit_status_messages_as_the_kubelets_clients_read_them() -> None:
    assert json.loads(streaming.exit_status(0, ["true"])) == {"metadata": {}, "status": "Success"}
    failed = json.loads(streaming.exit_status(3, ["sh"]))
    assert failed["status"] == "Failure" and failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


def test_before_v4_the_status_is_the_errors_text_and_nothing_for_success() -> None:
    assert streaming.exit_status(0, ["true"], "channel.k8s.io") == b""
    assert streaming.exit_status(2, ["sh", "-c", "x"], "") == (
        b"command terminated with non-zero exit code: error executing command [sh -c x], exit code 2")


def read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the pty's other end closed
            return out
        if not data:
            return out
        out += data


FORKS: list[int] = []
os.register_at_fork(before=lambda: FORKS.append(os.getpid()))


def test_exec_tty_starts_its_command_on_a_pty_of_its_own_without_forking_the_server() -> None:
    # what `app exec --tty` needs of its terminal: to lead its session, the pty its controlling
    # terminal with it in the foreground (resizes reach it as SIGWINCH)
    probe = ("import json, os\n"
             "print(json.dumps([os.getsid(0) == os.getpid(), os.tcgetpgrp(0) == os.getpgrp(),"
             " [os.isatty(fd) for fd in (0, 1, 2)]]))")
    FORKS.clear()
    shown = []
    for argv in ([sys.executable, "-I", "-S", "-c", probe], [shutil.which("grep") or "grep", "^SigIgn", "/proc/self/status"]):
        pid, master = streaming.spawn_on_pty(argv)
        try:
            shown.append(read_all(master).decode())
        finally:
            os.close(master)
        assert os.waitpid(pid, 0)[1] == 0
    assert FORKS == []  # no fork of this process: no Python and no fork handler ran in a child
    assert json.loads(shown[0]) == [True, True, [True, True, True]]
    # and SIGPIPE at its default, as subprocess leaves it (Python, this process, ignores it)
    assert not int(shown[1].split()[1], 16) & (1 << (signal.SIGPIPE - 1))


def test_exec_tty_of_a_command_that_cannot_start_is_an_oserror_and_leaks_no_pty() -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(OSError):
        streaming.spawn_on_pty(["/nonexistent/pyrkt"])
    assert set(os.listdir("/proc/self/fd")) == before
