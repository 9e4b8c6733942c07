"""Pod init's log records (docs/stage1-abi.md): a line ends in an ``F`` record, and a line longer
than LINE_MAX is cut into ``P`` records first, so no record's text is longer than LINE_MAX and
the records are the same however the app's output was read; the readers join them again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyrkt.stage0.control import Lines, LogFile
from pyrkt.stage1.podinit import LINE_MAX, PodInit, split_lines

LONG = b"a" * 20000


def records_of(reads: list[bytes]) -> list[tuple[bytes, bytes]]:
    """The records of output read in these pieces, then closed (what close_stream writes)."""
    out: list[tuple[bytes, bytes]] = []
    pending = b""
    for data in reads:
        pieces, pending = split_lines(pending, data)
        assert len(pending) <= LINE_MAX
        out += pieces
    return out + ([(b"P", pending)] if pending else [])


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_a_long_line_in_one_read_is_cut_into_partial_records() -> None:
    assert records_of([LONG + b"\n"]) == [(b"P", LONG[:LINE_MAX]), (b"F", LONG[LINE_MAX:])]
    three = b"b" * (2 * LINE_MAX + 5)
    assert records_of([b"x\n" + three + b"\ny\n"]) == [
        (b"F", b"x"), (b"P", three[:LINE_MAX]), (b"P", three[LINE_MAX:2 * LINE_MAX]), (b"F", b"bbbbb"), (b"F", b"y")]


@pytest.mark.parametrize("size", [1, 7, 4096, LINE_MAX - 1, LINE_MAX, LINE_MAX + 1, 20001, 65536])
def test_the_records_do_not_depend_on_how_the_output_was_read(size: int) -> None:
    output = b"short\n" + LONG + b"\n\n" + b"c" * LINE_MAX + b"\n" + b"d" * (2 * LINE_MAX) + b"\nend\n"
    records = records_of(chunks(output, size))
    assert records == records_of([output])
    assert [(tag, len(text)) for tag, text in records] == [
        (b"F", 5), (b"P", LINE_MAX), (b"F", 20000 - LINE_MAX), (b"F", 0), (b"F", LINE_MAX),
        (b"P", LINE_MAX), (b"F", LINE_MAX), (b"F", 3)]


def test_output_that_ends_without_a_newline_is_left_as_partial_records() -> None:
    assert records_of(chunks(LONG, 5000)) == [(b"P", LONG[:LINE_MAX]), (b"P", LONG[LINE_MAX:])]
    assert records_of([b"no newline"]) == [(b"P", b"no newline")]


def test_pod_init_logs_a_long_line_in_short_records_that_read_back_as_the_line(tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    init = PodInit({"apps": [{"name": "web", "log": "l"}], "tee": False})
    [app] = init.apps
    app.log = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    r, w = os.pipe()
    try:
        init.watch(app, "stdout", r)
        os.write(w, b"first\n" + LONG + b"\n" + LONG[:100])
        assert init.on_output(r)
        os.close(w)
        assert not init.on_output(r)  # closed: what is left is a partial record
    finally:
        os.close(app.log)
    records = [line.split(b" ", 3) for line in log.read_bytes().splitlines()]
    assert [(stream, tag, len(text)) for _, stream, tag, text in records] == [
        (b"stdout", b"F", 5), (b"stdout", b"P", LINE_MAX), (b"stdout", b"F", 20000 - LINE_MAX), (b"stdout", b"P", 100)]
    lines, reader = Lines(), LogFile(str(log))
    joined = lines.add(reader.read()) + lines.flush()
    reader.close()
    assert [(stream, text) for _, stream, text in joined] == [
        ("stdout", b"first\n"), ("stdout", LONG + b"\n"), ("stdout", LONG[:100])]
