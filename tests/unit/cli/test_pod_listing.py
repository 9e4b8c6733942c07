"""What `list`, `status` and `gc` print, from fixed pod samples and fixed times."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyrkt.cli.commands import gc as gc_cmd
from pyrkt.cli.commands.list_pods import HEADER, HEADER_FULL, rows
from pyrkt.cli.commands.status import lines
from pyrkt.cli.main import dispatch
from pyrkt.cli.output import table
from pyrkt.pods.info import AppInfo, NetInfo, PodInfo
from pyrkt.pods.state import Dir, State
from pyrkt.stage0.manage import GcReport

NS = 1_000_000_000
NOW = 1_700_000_000.0
UUID = "4f1c9b2e-7d3a-4c55-9e0f-0123456789ab"
IMAGE_ID = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def app(name: str, **kw: Any) -> AppInfo:
    base: dict[str, Any] = {"image_name": f"example.com/{name}:1.0", "image_id": IMAGE_ID, "state": "running"}
    return AppInfo(name=name, **{**base, **kw})


def running_pod(**kw: Any) -> PodInfo:
    base: dict[str, Any] = dict(
        uuid=UUID, state=State.RUNNING, where=Dir.RUN, created_at=int((NOW - 120) * NS),
        started_at=int((NOW - 60) * NS), pid=4242,
        networks=(NetInfo("default", "eth0", "172.16.28.5"), NetInfo("lan", "eth1", "10.1.0.9")),
        apps=(app("web"), app("db")),
    )
    return PodInfo(**{**base, **kw})


def render(pods: list[PodInfo], full: bool = False) -> str:
    out = io.StringIO()
    table(rows(pods, full=full, now=NOW), header=HEADER_FULL if full else HEADER, out=out)
    return out.getvalue()


def test_list_shows_one_row_per_app_with_pod_columns_on_the_first_only() -> None:
    first, second = rows([running_pod()], full=False, now=NOW)
    assert first == ["4f1c9b2e", "web", "example.com/web:1.0", "running", "2 minutes ago", "1 minute ago",
                     "default:ip4=172.16.28.5, lan:ip4=10.1.0.9"]
    assert second == ["", "db", "example.com/db:1.0", "", "", "", ""]


def test_list_table_is_aligned_under_rkts_header() -> None:
    text = render([running_pod()])
    header, first, second = text.expandtabs(8).splitlines()  # as a terminal shows rkt's tab-padded table
    assert header.split() == ["UUID", "APP", "IMAGE", "NAME", "STATE", "CREATED", "STARTED", "NETWORKS"]
    assert first.index("running") == header.index("STATE")
    assert second.index("db") == header.index("APP")
    assert text.splitlines()[2].split("\t")[:3] == ["", "", "db"]  # tabs, never spaces: cut -f reads it


def test_list_full_shows_whole_uuid_image_id_and_exact_times() -> None:
    first, _ = rows([running_pod()], full=True, now=NOW)
    assert first[:4] == [UUID, "web", "example.com/web:1.0", "sha256:abababababab"]
    assert first[5] == "2023-11-14 22:11:20 +0000 UTC"
    assert first[6] == "2023-11-14 22:12:20 +0000 UTC"


def test_a_pod_without_apps_shows_dashes_and_a_never_started_pod_no_start_time() -> None:
    pod = PodInfo(uuid=UUID, state=State.PREPARING, where=Dir.PREPARE, created_at=int((NOW - 5) * NS))
    assert rows([pod], full=True, now=NOW) == [
        [UUID, "-", "-", "-", "preparing", "2023-11-14 22:13:15 +0000 UTC", "", ""],
    ]
    assert rows([pod], full=False, now=NOW)[0][3:6] == ["preparing", "5 seconds ago", ""]


def test_status_of_a_running_pod() -> None:
    assert lines(running_pod()) == [
        "state=running",
        "created=2023-11-14 22:11:20 +0000 UTC",
        "started=2023-11-14 22:12:20 +0000 UTC",
        "networks=default:ip4=172.16.28.5, lan:ip4=10.1.0.9",
        "pid=4242",
        "exited=false",
    ]


def test_status_of_an_exited_pod_shows_each_recorded_exit_code() -> None:
    pod = running_pod(state=State.EXITED, networks=(), apps=(
        app("web", state="exited", exit_code=0), app("db", state="exited", exit_code=5), app("side", state="exited"),
    ))
    assert lines(pod)[3:] == ["networks=", "pid=4242", "exited=true", "app-web=0", "app-db=5"]


def test_status_of_a_prepared_pod_has_no_runtime_lines() -> None:
    pod = PodInfo(uuid=UUID, state=State.PREPARED, where=Dir.PREPARED, created_at=int(NOW * NS))
    assert lines(pod) == ["state=prepared", "created=2023-11-14 22:13:20 +0000 UTC"]


class FakeCtx:
    def __init__(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()

    def warn(self, message: str) -> None:
        self.stderr.write(f"pyrkt: {message}\n")


def test_gc_prints_rkts_lines() -> None:
    ctx = FakeCtx()
    report = GcReport(marked=("a",), aborted=("b",), expired=("c",), collected=("d", "e"), within_grace=("f",),
                      failed=(("g", "/x/y is still mounted; not removing /x"),))
    gc_cmd.report_lines(ctx, report, 1800)  # type: ignore[arg-type]
    assert ctx.stdout.getvalue() == 'Garbage collecting pod "d"\nGarbage collecting pod "e"\n'
    assert ctx.stderr.getvalue().splitlines() == [
        'gc: moving pod "a" to garbage',
        'gc: moving failed prepare "b" to garbage',
        'gc: moving expired prepared pod "c" to garbage',
        'gc: pod "f" not removed: still within grace period (30m0s)',
        'pyrkt: pod "g" not removed: /x/y is still mounted; not removing /x',
    ]


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = dispatch([f"--dir={tmp_path}", *args], out, err)
    return code, out.getvalue(), err.getvalue()


def test_status_with_an_unreadable_uuid_file_exits_1_as_rkt(tmp_path: Path) -> None:
    code, out, err = cli(tmp_path, "status", f"--uuid-file={tmp_path}/missing")
    assert (code, out) == (1, "")
    assert "unable to read UUID from file" in err and "missing" in err


def test_list_of_an_empty_data_dir_prints_the_header_or_an_empty_json_array(tmp_path: Path) -> None:
    assert cli(tmp_path, "list") == (0, "UUID\tAPP\tIMAGE NAME\tSTATE\tCREATED\tSTARTED\tNETWORKS\n", "")
    assert cli(tmp_path, "list", "--no-legend") == (0, "", "")
    assert cli(tmp_path, "list", "--format=json") == (0, "[]\n", "")


@pytest.mark.parametrize("command", [["rm", "abcd"], ["gc"]])
def test_rm_and_gc_refuse_unprivileged_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    import os

    from pyrkt.errors import PyrktError

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PyrktError, match="cannot run as unprivileged user"):
        cli(tmp_path, *command)
