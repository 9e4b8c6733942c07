"""The pull progress display: its lines for a state, its redraws in place at most ten times a
second, its thread safety, nothing on a stream that is not a terminal, and the registry client
feeding it every byte of every layer it downloads."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import httpx
from tests.support.images import build_oci_layout
from tests.unit.fetch.test_registry_client import HOST, FakeRegistry

from pyrkt.fetch.progress import LayerState, Progress, human_bytes, human_duration, render
from pyrkt.fetch.reference import parse_reference
from pyrkt.fetch.registry import RegistryClient, import_registry
from pyrkt.store import Store

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_sizes_and_durations_read_as_people_write_them() -> None:
    assert [human_bytes(n) for n in (0, 999, 1000, 2_500_000, 3_210_000_000)] == \
        ["0 B", "999 B", "1.0 kB", "2.5 MB", "3.2 GB"]
    assert [human_duration(s) for s in (0, 59.6, 61, 3725)] == ["0:00", "1:00", "1:01", "1:02:05"]


def test_each_layer_shows_its_short_digest_bytes_and_rate_and_the_total_its_time_left() -> None:
    layers = [LayerState(A, 10_000_000, done=4_000_000, started=100.0),
              LayerState(B, 2_000_000)]
    lines = render(layers, now=102.0, started=100.0)
    assert lines == [
        "aaaaaaaaaaaa     4.0 MB / 10.0 MB    2.0 MB/s",
        "bbbbbbbbbbbb        0 B / 2.0 MB     waiting",
        "total            4.0 MB / 12.0 MB    2.0 MB/s  0:04 left",
    ]


def test_finished_layers_say_done_and_the_total_says_how_long_it_took() -> None:
    layers = [LayerState(A, 3000, done=3000, started=100.0, ended=101.0),
              LayerState(B, 1000, done=1000, started=100.0, ended=103.0)]
    lines = render(layers, now=104.0, started=100.0)
    assert lines[0].endswith("done") and lines[1].endswith("done")
    assert lines[2] == "total            4.0 kB / 4.0 kB     1.0 kB/s  in 0:04"


def test_before_any_byte_the_total_has_no_rate_nor_time_left() -> None:
    assert render([LayerState(A, 5000)], now=100.0, started=100.0)[-1] == "total               0 B / 5.0 kB"


def test_redraws_are_at_most_ten_a_second_and_move_the_cursor_back_over_the_last_drawing() -> None:
    clock, out = Clock(), Tty()
    progress = Progress(out, clock=clock, width=200)
    progress.add(A, 1000)                     # first report: drawn
    assert out.getvalue().count("total") == 1 and "\x1b[" in out.getvalue()
    for _ in range(50):                       # 50 reports within 0.05 s: none drawn
        clock.now += 0.001
        progress.advance(A, 10)
    assert out.getvalue().count("total") == 1
    clock.now += 0.1                          # a tenth of a second later: drawn again
    progress.advance(A, 10)
    text = out.getvalue()
    assert text.count("total") == 2
    second = text[text.index("total") + 1:]
    assert "\x1b[2F" in second                # back up over the two lines drawn before
    assert "510 B / 1.0 kB" in second


def test_close_draws_the_final_state_once_even_inside_the_throttle_window() -> None:
    clock, out = Clock(), Tty()
    progress = Progress(out, clock=clock, width=200)
    progress.add(A, 1000)
    clock.now += 0.01
    progress.advance(A, 1000)
    progress.finish(A)
    progress.close()
    progress.close()
    assert out.getvalue().count("total") == 2
    assert out.getvalue().rstrip().endswith("in 0:00")


def test_lines_are_cut_to_the_terminal_width_so_redraws_do_not_wrap() -> None:
    out = Tty()
    Progress(out, width=20).add(A, 10**9)
    assert all(len(line.split("\x1b[2K")[-1]) <= 19 for line in out.getvalue().splitlines())


def test_nothing_is_shown_on_a_stream_that_is_not_a_terminal() -> None:
    assert Progress.for_stream(io.StringIO()) is None
    assert isinstance(Progress.for_stream(Tty()), Progress)


def test_threads_reporting_at_once_lose_no_byte() -> None:
    progress = Progress(Tty(), width=200)
    keys = [f"sha256:{i:064x}" for i in range(8)]
    for key in keys:
        progress.add(key, 8000)

    def download(key: str) -> None:
        for _ in range(1000):
            progress.advance(key, 8)
        progress.finish(key)

    threads = [threading.Thread(target=download, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    progress.close()
    assert all(layer.done == 8000 and layer.ended is not None for layer in progress.layers.values())


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[str, int] = {}
        self.received: dict[str, int] = {}
        self.finished: list[str] = []

    def add(self, key: str, total: int) -> None:
        self.totals[key] = total

    def advance(self, key: str, n: int) -> None:
        with self.lock:
            self.received[key] = self.received.get(key, 0) + n

    def finish(self, key: str) -> None:
        with self.lock:
            self.finished.append(key)


def test_the_registry_client_reports_every_byte_of_every_layer_and_its_end(
        store: Store, tmp_path: Path) -> None:  # noqa: F811 (the store fixture)
    layout = build_oci_layout(tmp_path / "layout", cmd=("true",),
                              extra_layers=[{"a": b"x" * 50_000}, {"b": b"y" * 70_000}])
    registry = FakeRegistry(layout)
    ref = parse_reference(f"{HOST}/busybox:latest")
    client = RegistryClient(ref, backoff=0, transport=httpx.MockTransport(registry.handle))
    recorder = Recorder()
    import_registry(store, ref, source="docker://x", client=client, progress=recorder)
    layers = [p.rsplit("/", 1)[1] for p in registry.paths("blobs")]
    assert len(recorder.totals) == 3 and set(recorder.totals) <= set(layers)
    assert recorder.received == recorder.totals
    assert sorted(recorder.finished) == sorted(recorder.totals)
