"""GetLogs' lines from the apps' log files: partial records joined, apps merged by time,
since/until, the last N lines, and following a running pod until it exits."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyrkt.api.logs import LogQuery, batches, stream, text
from pyrkt.cli.main import dispatch, main
from pyrkt.config import Config
from pyrkt.errors import NotFound
from pyrkt.model import abi
from pyrkt.pods.state import Dir
from pyrkt.stage0 import control
from pyrkt.stage0.control import record_time_ns

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def stamp(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1e9):09d}Z"


def write_log(pod: Path, app: str, *records: tuple[float, str, str, str]) -> None:
    log = pod / abi.app_log(app)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        for t, stream_name, tag, text in records:
            f.write(f"{stamp(t)} {stream_name} {tag} {text}\n")


def lines_of(config: Config, **query: Any) -> list[str]:
    return [line for batch in stream(config, LogQuery(**query)) for line in batch]


def while_writing(holder: Any, fd: int, *writes: Callable[[], None]) -> threading.Thread:
    """A pod init in the background: each write 0.3 s after the last, then its exit (the lock)."""
    def writer() -> None:
        for write in writes:
            time.sleep(0.3)
            write()
        time.sleep(0.3)
        holder.release(fd)

    t = threading.Thread(target=writer)
    t.start()
    return t


def test_record_times_are_read_to_the_nanosecond() -> None:
    assert record_time_ns(stamp(T0 + 0.5)) == T0 * 1_000_000_000 + 500_000_000
    assert record_time_ns("2023-11-14T22:13:20Z") == T0 * 1_000_000_000
    assert record_time_ns("garbage") is None


def test_partial_records_are_joined_into_their_line_per_stream() -> None:
    lines = control.Lines()
    got = text(lines.add([("t1", "stdout", b"hel"), ("t2", "stderr", b"oops\n"), ("t3", "stdout", b"lo\n"),
                          ("t4", "stdout", b"no newline")]))
    assert got == [("t2", "oops"), ("t1", "hello")]
    assert text(lines.flush()) == [("t4", "no newline")]


def test_pyrkt_logs_joins_partial_records_into_their_line(make_pod: Callable[..., Path], config: Config) -> None:
    """`pyrkt logs` prints a line cut into pieces as the line: with its time only at its start,
    and, merging apps by time, never with another app's line in between its pieces."""
    pod = make_pod(Dir.RUN, apps=("web", "db"))
    write_log(pod, "web", (T0 + 1, "stdout", "P", "long "), (T0 + 3, "stdout", "F", "line"))
    write_log(pod, "db", (T0 + 2, "stdout", "F", "db line"), (T0 + 4, "stdout", "P", "db's last"))

    def logs(*args: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        assert dispatch([f"--dir={config.data_dir}", "logs", *args, pod.name], out, err) == 0, err.getvalue()
        return out.getvalue()

    assert logs() == "long line\ndb line\ndb's last"
    assert logs("--app=web", "--timestamps") == f"{stamp(T0 + 1)} long line\n"
    assert logs("--timestamps") == f"{stamp(T0 + 1)} long line\n{stamp(T0 + 2)} db line\n{stamp(T0 + 4)} db's last"


def test_apps_are_merged_by_time_and_one_app_can_be_chosen(make_pod: Callable[..., Path], config: Config) -> None:
    pod = make_pod(Dir.RUN, apps=("web", "db"), pid=1)
    write_log(pod, "web", (T0 + 1, "stdout", "F", "web one"), (T0 + 3, "stderr", "F", "web two"))
    write_log(pod, "db", (T0 + 2, "stdout", "F", "db one"))
    assert lines_of(config, pod_id=pod.name) == ["web one", "db one", "web two"]
    assert lines_of(config, pod_id=pod.name[:8], app="db") == ["db one"]
    with pytest.raises(NotFound, match="app 'cache' not found"):
        lines_of(config, pod_id=pod.name, app="cache")


def test_since_until_and_the_last_n_lines(make_pod: Callable[..., Path], config: Config) -> None:
    pod = make_pod(Dir.RUN, pid=1)
    write_log(pod, "web", *[(T0 + i, "stdout", "F", f"line {i}") for i in range(10)])
    assert lines_of(config, pod_id=pod.name, since=T0 + 7) == ["line 7", "line 8", "line 9"]
    assert lines_of(config, pod_id=pod.name, until=T0 + 2) == ["line 0", "line 1"]
    assert lines_of(config, pod_id=pod.name, lines=2) == ["line 8", "line 9"]
    assert lines_of(config, pod_id=pod.name, since=T0 + 2, until=T0 + 6, lines=2) == ["line 4", "line 5"]


def test_a_pod_without_logs_answers_one_empty_response(make_pod: Callable[..., Path], config: Config) -> None:
    pod = make_pod(Dir.PREPARED)
    assert list(stream(config, LogQuery(pod_id=pod.name))) == [[]]
    assert list(stream(config, LogQuery(pod_id=pod.name, follow=True))) == [[]]  # not running: nothing to follow


def test_follow_streams_new_lines_until_the_pod_exits(make_pod: Callable[..., Path], config: Config,
                                                     holder: Any) -> None:
    pod = make_pod(Dir.RUN, pid=1)
    fd = holder.lock(pod)
    write_log(pod, "web", (T0, "stdout", "F", "before"))
    got: list[list[str]] = []

    t = while_writing(holder, fd, lambda: write_log(pod, "web", (T0 + 1, "stdout", "P", "half ")),
                      lambda: write_log(pod, "web", (T0 + 2, "stdout", "F", "a line"), (T0 + 3, "stdout", "P", "the end")))
    for batch in stream(config, LogQuery(pod_id=pod.name, follow=True)):
        got.append(batch)
    t.join()
    assert [line for batch in got for line in batch] == ["before", "half a line", "the end"]
    assert got[0] == ["before"]


def test_follow_stops_when_the_client_goes(make_pod: Callable[..., Path], config: Config, holder: Any) -> None:
    pod = make_pod(Dir.RUN, pid=1)
    holder.lock(pod)
    active = iter([True, False])
    got = list(stream(config, LogQuery(pod_id=pod.name, follow=True), active=lambda: next(active),
                      sleep=lambda s: None))
    assert got == [[]]


def test_large_logs_are_sent_in_bounded_batches() -> None:
    runs = list(batches([f"{i}" for i in range(2500)]))
    assert [len(r) for r in runs] == [1000, 1000, 500]
    big = ["x" * 700_000] * 3
    assert [len(r) for r in batches(big)] == [1, 1, 1]


# `pyrkt logs --since/--until/--tail` (podman's), over the same files


@pytest.fixture
def pyrkt_logs(capsys: pytest.CaptureFixture[str], config: Config) -> Callable[..., tuple[int, str, str]]:
    def logs(pod: Path, *args: str) -> tuple[int, str, str]:
        code = main([f"--dir={config.data_dir}", "logs", *args, pod.name])
        out, err = capsys.readouterr()
        return code, out, err
    return logs


def test_logs_shows_the_lines_of_a_time_window_and_the_last_n(make_pod: Callable[..., Path],
                                                          pyrkt_logs: Callable[..., tuple[int, str, str]]) -> None:
    pod = make_pod(Dir.RUN)
    write_log(pod, "web", *[(T0 + i, "stdout" if i % 2 else "stderr", "F", f"line {i}") for i in range(10)])
    write_log(pod, "web", (T0 + 10, "stdout", "P", "a long "), (T0 + 11, "stdout", "F", "last line"))

    def shown(*args: str) -> list[str]:
        code, out, err = pyrkt_logs(pod, *args)
        assert code == 0, err
        return sorted(out.splitlines() + err.splitlines(), key=lambda line: line.split()[-1])

    assert shown("--tail=3") == ["line 8", "line 9", "a long last line"]
    assert shown("--tail=0") == []
    assert shown("--tail=99") == shown() == shown("--tail=-1")
    assert shown(f"--since={T0 + 8}") == ["line 8", "line 9", "a long last line"]
    assert shown(f"--until={T0 + 2}.5") == ["line 0", "line 1", "line 2"]
    assert shown("--since=" + stamp(T0 + 3), "--until=" + stamp(T0 + 7), "--tail=2") == ["line 5", "line 6"]
    assert shown("--since=100000h") == shown()  # a duration before now: 11 years
    assert shown("--until=100000h") == []


def test_logs_window_merges_apps_before_it_takes_the_last_n(make_pod: Callable[..., Path],
                                                            pyrkt_logs: Callable[..., tuple[int, str, str]]) -> None:
    pod = make_pod(Dir.RUN, apps=("web", "db"))
    write_log(pod, "web", (T0 + 1, "stdout", "F", "web one"), (T0 + 3, "stdout", "F", "web two"))
    write_log(pod, "db", (T0 + 2, "stdout", "F", "db one"), (T0 + 4, "stdout", "F", "db two"))
    assert pyrkt_logs(pod, "--tail=2")[1] == "web two\ndb two\n"
    assert pyrkt_logs(pod, f"--since={T0 + 2}", f"--until={T0 + 4}")[1] == "db one\nweb two\n"


@pytest.mark.parametrize(("args", "message"), [
    (("--tail=abc",), "invalid --tail='abc': want a number of lines, or -1 for all"),
    (("--tail=-2",), "invalid --tail='-2'"),
    (("--since=yesterday",), "invalid --since='yesterday': want a time"),
    (("--until=2026-13-01",), "invalid --until='2026-13-01'"),
    (("--since=10m", "--until=20m"), "--until=20m is not after --since=10m"),
])
def test_bad_windows_are_refused_in_one_line(make_pod: Callable[..., Path],
                                            pyrkt_logs: Callable[..., tuple[int, str, str]],
                                            args: tuple[str, ...], message: str) -> None:
    pod = make_pod(Dir.RUN)
    code, out, err = pyrkt_logs(pod, *args)
    assert (code, out) == (254, "")
    assert message in err and err.count("\n") == 1


def test_logs_follow_after_the_last_n_and_stops_at_until(make_pod: Callable[..., Path], holder: Any,
                                                        pyrkt_logs: Callable[..., tuple[int, str, str]]) -> None:
    pod = make_pod(Dir.RUN, pid=1)
    fd = holder.lock(pod)
    now = time.time()
    write_log(pod, "web", *[(now - 5 + i, "stdout", "F", f"old {i}") for i in range(3)])

    t = while_writing(holder, fd, lambda: write_log(pod, "web", (time.time(), "stdout", "P", "half ")),
                      lambda: write_log(pod, "web", (time.time(), "stdout", "F", "a line")))
    code, out, err = pyrkt_logs(pod, "--follow", "--tail=1")
    t.join()
    assert (code, out, err) == (0, "old 2\nhalf a line\n", "")

    fd = holder.lock(pod)  # running again: following ends once --until has passed, though the pod runs on
    started = time.monotonic()
    code, out, _ = pyrkt_logs(pod, "--follow", f"--until={time.time() + 0.5:.3f}")
    assert (code, out) == (0, "old 0\nold 1\nold 2\nhalf a line\n")
    assert 0.4 < time.monotonic() - started < 5
    holder.release(fd)


def test_logs_follows_several_apps_merged_by_time(make_pod: Callable[..., Path], holder: Any,
                                                 pyrkt_logs: Callable[..., tuple[int, str, str]]) -> None:
    pod = make_pod(Dir.RUN, apps=("web", "db"), pid=1)
    fd = holder.lock(pod)
    write_log(pod, "web", (T0 + 1, "stdout", "F", "web one"))
    write_log(pod, "db", (T0 + 2, "stdout", "F", "db one"))

    t = while_writing(holder, fd, lambda: (write_log(pod, "db", (T0 + 4, "stdout", "F", "db two")),
                                           write_log(pod, "web", (T0 + 3, "stderr", "F", "web two"))))
    code, out, err = pyrkt_logs(pod, "--follow", "--timestamps")
    t.join()
    assert (code, err) == (0, f"{stamp(T0 + 3)} web two\n")
    assert out == f"{stamp(T0 + 1)} web one\n{stamp(T0 + 2)} db one\n{stamp(T0 + 4)} db two\n"


def test_logs_of_a_sandbox_without_apps(make_pod: Callable[..., Path], holder: Any,
                                       pyrkt_logs: Callable[..., tuple[int, str, str]]) -> None:
    pod = make_pod(Dir.RUN, apps=(), pid=1)
    holder.lock(pod)
    assert pyrkt_logs(pod) == (0, "", "")
    code, out, err = pyrkt_logs(pod, "--follow")
    assert (code, out) == (254, "") and "has no apps to follow" in err


@pytest.mark.parametrize("seed", range(8))
def test_tail_reads_from_near_the_end_and_shows_what_a_whole_read_would(make_pod: Callable[..., Path], config: Config,
                                                                       monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """`logs --tail=N` starts reading where N whole lines are left (not at the start of a large
    log): lines in pieces across that point, two streams interleaved, N over what there is."""
    import random

    from pyrkt.stage0 import control

    rng = random.Random(seed)
    pod = make_pod(Dir.RUN)
    records = []
    for i in range(600):  # the two streams' pieces interleaved, as pod init reads them
        stream_name = rng.choice(("stdout", "stdout", "stderr"))
        records.append((T0 + i, stream_name, rng.choice("PFF"), f"{stream_name[3:]}{i} "))
    write_log(pod, "web", *records)
    log_path = str(pod / abi.app_log("web"))
    whole = control.LogFile(log_path)
    lines = control.Lines()
    everything = lines.add(control.read_all(whole)) + lines.flush()
    everything.sort(key=lambda line: line[0])
    whole.close()
    monkeypatch.setattr(control, "TAIL_CHUNK", rng.choice((64, 200, 1000)))  # several steps back
    pod_obj = control.Pod.find(config.pods_dir, pod.name)
    for n in (0, 1, 2, 5, 17, 120, 299, 1000):  # some streams end unfinished: flushed as lines
        got = list(control.windowed([log_path], control.Window(tail=n), follow=False, pod=pod_obj))
        assert got == everything[max(0, len(everything) - n):], n
