"""Pod init of a mutable pod (`app sandbox`): the requests `app start|stop|rm` leave in the pod
dir, and what they do to an app's state. The apps are real child processes (forked by a stand-in
for the app set-up, which needs root), so exits, signals and reaping are the kernel's."""

from __future__ import annotations

import marshal
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyrkt.errors import InvalidState
from pyrkt.stage1 import mutable
from pyrkt.stage1.podinit import App, PodInit


class Sandbox:
    def __init__(self, pod: Path) -> None:
        self.pod = pod
        for d in ("req", "status", "pids", "logs"):
            (pod / d).mkdir()
        self.init = PodInit({"apps": [], "tee": False, "mutable": True, "pod": str(pod), "requests_dir": "req",
                             "status_dir": "status", "pids_dir": "pids", "stop_timeout": 10.0})
        self.init.spawn = self.spawn  # type: ignore[method-assign]
        self.behaviour: dict[str, str] = {}
        self.nonce = 0

    def spawn(self, app: App, hold: bool = False) -> str | None:
        """What pod init's spawn does, with the app's set-up replaced by a child that exits
        with a code (or sleeps until it is signalled). ``hold``: the child waits on the go pipe
        as an app's set-up does (an "error:" one fails before, as a set-up would), and pod init's
        own ``release`` and ``exec_done`` take it from there."""
        how = self.behaviour.get(app.name, "sleep")
        if how.startswith("error:") and not hold:
            return how.removeprefix("error:")
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        go_r = -1
        if hold:
            go_r, app.go = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            os.close(err_r)
            if how.startswith("error:"):
                os.write(err_w, how.removeprefix("error:").encode())
                os._exit(127)
            if hold:
                os.close(app.go)
                if not os.read(go_r, 1):
                    os._exit(0)
            if how == "trap":  # handles TERM and exits 0 (as a server that shuts down cleanly)
                import signal

                signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
            os.close(err_w)  # its "exec"
            if how in ("sleep", "trap"):
                time.sleep(60)
            os._exit(int(how) if how.isdigit() else 0)
        app.pid = pid
        self.init.by_pid[pid] = app
        os.close(err_w)
        if hold:
            os.close(go_r)
            app.err = err_r
            return None
        return self.init.exec_done(app, err_r)

    def add(self, name: str) -> None:
        (self.pod / "appsinfo" / name).mkdir(parents=True)
        (self.pod / "appsinfo" / name / "plan").write_bytes(marshal.dumps({"log": f"logs/{name}.log"}))

    def ask(self, action: str, name: str, arg: str = "") -> str:
        self.nonce += 1
        (self.pod / "req" / name).write_text(f"{action} n{self.nonce}" + (f" {arg}" if arg else ""))
        self.init.serve_requests()
        assert not (self.pod / "req" / name).exists()
        nonce, _, answer = (self.pod / "req" / f"{name}.result").read_text().partition(" ")
        assert nonce == f"n{self.nonce}"
        return answer

    def tell(self, action: str, name: str) -> None:
        """A request nobody waits for (`app add`'s prepare): served, and answered with nothing."""
        result = self.pod / "req" / f"{name}.result"
        before = result.read_text() if result.exists() else None
        (self.pod / "req" / name).write_text(f"{action} n0")
        self.init.serve_requests()
        assert not (self.pod / "req" / name).exists()
        assert (result.read_text() if result.exists() else None) == before

    def held(self, name: str) -> App:
        app = self.init.find(name)
        assert app is not None and app.pid and app.go >= 0, f"app {name} is not held"
        return app

    def state(self, name: str) -> str:
        status = self.pod / "status" / name
        if status.exists():
            return f"exited {status.read_text()}"
        return "running" if (self.pod / "status" / f"{name}-started").exists() else "created"

    def reap_until(self, name: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.pod / "status" / name).exists():
            assert time.monotonic() < deadline, f"app {name} was not reaped"
            self.init.reap()
            time.sleep(0.01)

    def kill_all(self) -> None:
        for app in self.init.apps:
            if app.pid and app.code is None:
                os.kill(app.pid, 9)
                os.waitpid(app.pid, 0)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    sb = Sandbox(tmp_path)
    yield sb
    sb.kill_all()


def test_a_sandbox_without_apps_keeps_running_until_it_is_stopped(sandbox: Sandbox) -> None:
    assert sandbox.init.running()
    sandbox.init.begin_stop(None)
    assert not sandbox.init.running()


def test_start_runs_the_added_app_and_answers_ok(sandbox: Sandbox) -> None:
    sandbox.add("web")
    assert sandbox.ask("start", "web") == "ok"
    assert sandbox.state("web") == "running"
    assert [a.name for a in sandbox.init.apps] == ["web"]


def test_a_second_start_of_a_running_app_is_refused(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.ask("start", "web")
    assert sandbox.ask("start", "web") == "error:the app is running already"
    assert len(sandbox.init.apps) == 1


def test_an_app_failing_ends_only_itself_in_a_sandbox(sandbox: Sandbox) -> None:
    sandbox.add("bad")
    sandbox.add("web")
    sandbox.behaviour["bad"] = "3"
    sandbox.ask("start", "web")
    sandbox.ask("start", "bad")
    sandbox.reap_until("bad")
    assert sandbox.state("bad") == "exited 3"
    assert sandbox.state("web") == "running"
    assert not sandbox.init.stopping and sandbox.init.running()


def test_stop_records_the_stopped_app_as_0_and_start_runs_it_again(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.ask("start", "web")
    first = sandbox.init.apps[0].pid
    assert sandbox.ask("stop", "web") == "ok"
    assert sandbox.init.apps[0].kill_at is not None  # TERM now, KILL after the stop timeout
    sandbox.reap_until("web")
    assert sandbox.state("web") == "exited 0"
    assert sandbox.init.apps[0].kill_at is None
    assert sandbox.ask("start", "web") == "ok"
    assert sandbox.state("web") == "running"  # the old exit code is gone
    assert sandbox.init.apps[0].pid != first and len(sandbox.init.apps) == 1


@pytest.mark.parametrize(("arg", "after"), [("2.5", 2.5), ("0", 0.0), ("", 10.0), ("soon", 10.0), ("-1", 10.0),
                                            ("nan", 10.0)])
def test_stop_kills_after_the_timeout_the_asker_gave_else_the_pods(sandbox: Sandbox, arg: str, after: float) -> None:
    sandbox.add("web")
    sandbox.ask("start", "web")
    before = time.monotonic()
    assert sandbox.ask("stop", "web", arg) == "ok"  # `app stop`, a CRI StopContainer's timeout
    kill_at = sandbox.init.apps[0].kill_at
    assert kill_at is not None and before + after <= kill_at <= time.monotonic() + after


@pytest.mark.parametrize(("written", "code", "after"), [("30\n", None, 30.0), ("0.5", None, 0.5), (None, None, 10.0),
                                                        ("junk", None, 10.0), ("30", 3, 10.0)])
def test_the_pods_stop_kills_after_what_pyrkt_stop_left_in_the_pod_dir(
        sandbox: Sandbox, written: str | None, code: int | None, after: float) -> None:
    sandbox.init.plan["stop_timeout_file"] = "stop-timeout"
    if written is not None:
        (sandbox.pod / "stop-timeout").write_text(written)
    before = time.monotonic()
    sandbox.init.begin_stop(code)  # a TERM from `pyrkt stop --timeout` (code None), or an app's failure
    assert sandbox.init.kill_at is not None and before + after <= sandbox.init.kill_at <= time.monotonic() + after


def test_a_stopped_app_killed_by_term_is_0_for_rkt_and_143_signaled_for_the_cri(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.ask("start", "web")
    sandbox.ask("stop", "web")
    sandbox.reap_until("web")
    assert sandbox.state("web") == "exited 0"
    assert (sandbox.pod / "status" / "web-signaled").read_text() == "143"
    sandbox.ask("start", "web")
    assert not (sandbox.pod / "status" / "web-signaled").exists()  # of the last run: gone with its code


def test_a_stopped_app_that_handles_term_and_exits_0_has_no_signaled_status(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.behaviour["web"] = "trap"
    sandbox.ask("start", "web")
    time.sleep(0.2)  # its handler in place
    sandbox.ask("stop", "web")
    sandbox.reap_until("web")
    assert sandbox.state("web") == "exited 0"
    assert not (sandbox.pod / "status" / "web-signaled").exists()


def test_stop_of_an_app_that_is_not_running_is_no_error(sandbox: Sandbox) -> None:
    assert sandbox.ask("stop", "web") == "ok"


def test_rm_of_a_running_app_is_refused_and_of_an_exited_one_forgets_it(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.ask("start", "web")
    assert sandbox.ask("rm", "web") == "error:" + mutable.RUNNING  # what `app rm` takes for "stop it first"
    sandbox.ask("stop", "web")
    sandbox.reap_until("web")
    assert sandbox.ask("rm", "web") == "ok"
    assert sandbox.init.apps == []


def test_a_failed_start_is_answered_with_why(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.behaviour["web"] = "error:app web: executable 'httpd' not found"
    assert sandbox.ask("start", "web") == "error:app web: executable 'httpd' not found"
    assert sandbox.state("web") == "created"


def test_start_of_an_app_without_a_plan_is_answered_with_an_error(sandbox: Sandbox) -> None:
    assert sandbox.ask("start", "ghost").startswith("error:")


def test_an_unknown_request_is_answered_with_an_error(sandbox: Sandbox) -> None:
    assert sandbox.ask("restart", "web") == "error:unknown request 'restart'"


def test_a_stopping_pod_starts_no_app(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.init.begin_stop(None)
    assert sandbox.ask("start", "web") == "error:the pod is stopping"


def test_results_and_temporary_files_are_not_taken_for_requests(sandbox: Sandbox) -> None:
    (sandbox.pod / "req" / "web.result").write_text("n0 ok")
    (sandbox.pod / "req" / "web.tmp-12").write_text("start n9")
    sandbox.init.serve_requests()
    assert sandbox.init.apps == []
    assert (sandbox.pod / "req" / "web.tmp-12").exists()


# -- `app add`'s prepare: the app set up and held until its start ------------------------------


def alive(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return False


def test_a_prepared_app_is_held_created_and_its_start_releases_that_child(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.tell("prepare", "web")
    held = sandbox.held("web").pid
    assert sandbox.state("web") == "created"
    assert not (sandbox.pod / "pids" / "web").exists()  # the pid of a started app only
    assert sandbox.ask("start", "web") == "ok"
    app = sandbox.init.apps[0]
    assert app.pid == held and app.go == app.err == -1  # the same process, not a second spawn
    assert sandbox.state("web") == "running"
    assert (sandbox.pod / "pids" / "web").read_text() == str(held)


def test_a_released_app_runs_on_as_a_started_one(sandbox: Sandbox) -> None:
    sandbox.add("bad")
    sandbox.behaviour["bad"] = "3"
    sandbox.tell("prepare", "bad")
    sandbox.ask("start", "bad")
    sandbox.reap_until("bad")
    assert sandbox.state("bad") == "exited 3"
    assert not sandbox.init.stopping


def test_a_second_prepare_or_one_of_a_started_app_changes_nothing(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.tell("prepare", "web")
    held = sandbox.held("web").pid
    sandbox.tell("prepare", "web")
    assert sandbox.held("web").pid == held and len(sandbox.init.apps) == 1
    sandbox.ask("start", "web")
    sandbox.tell("prepare", "web")
    assert sandbox.init.apps[0].go == -1 and sandbox.state("web") == "running"


def test_rm_of_a_prepared_app_ends_its_held_child_before_answering(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.tell("prepare", "web")
    held = sandbox.held("web").pid
    assert sandbox.ask("rm", "web") == "ok"  # not "running": it never started
    assert sandbox.init.apps == [] and held not in sandbox.init.by_pid
    assert not alive(held)  # reaped by then: its cgroups can go
    assert not (sandbox.pod / "status" / "web").exists()


def test_a_held_child_whose_set_up_failed_is_spawned_again_by_the_start_which_says_why(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.behaviour["web"] = "error:app web: executable 'httpd' not found"
    sandbox.tell("prepare", "web")
    pid = sandbox.held("web").pid
    deadline = time.monotonic() + 10
    while sandbox.init.apps[0].go >= 0:  # reaped without a status: the app is still created
        assert time.monotonic() < deadline
        sandbox.init.reap()
        time.sleep(0.01)
    assert sandbox.init.apps[0].pid == 0 and pid not in sandbox.init.by_pid
    assert sandbox.state("web") == "created"
    assert sandbox.ask("start", "web") == "error:app web: executable 'httpd' not found"
    sandbox.behaviour["web"] = "sleep"
    assert sandbox.ask("start", "web") == "ok"
    assert sandbox.state("web") == "running"


def test_a_stopping_pod_ends_held_children_without_a_status_and_prepares_none(sandbox: Sandbox) -> None:
    sandbox.add("web")
    sandbox.add("db")
    sandbox.tell("prepare", "web")
    sandbox.init.begin_stop(None)
    assert sandbox.init.running()  # until the held child is reaped
    deadline = time.monotonic() + 10
    while sandbox.init.running():
        assert time.monotonic() < deadline
        sandbox.init.reap()
        time.sleep(0.01)
    assert not (sandbox.pod / "status" / "web").exists()
    sandbox.tell("prepare", "db")
    assert sandbox.init.find("db") is None


def test_a_request_written_while_pod_init_acts_on_another_is_kept_for_the_next_signal(sandbox: Sandbox) -> None:
    sandbox.add("web")
    act = sandbox.init.act

    def start_asked_meanwhile(action: str, name: str, arg: str = "") -> str | None:
        (sandbox.pod / "req" / name).write_text("start n7")  # `app start` right after `app add`
        return act(action, name, arg)

    sandbox.init.act = start_asked_meanwhile  # type: ignore[method-assign]
    (sandbox.pod / "req" / "web").write_text("prepare n0")
    sandbox.init.serve_requests()
    assert (sandbox.pod / "req" / "web").read_text() == "start n7"
    sandbox.init.act = act  # type: ignore[method-assign]
    sandbox.init.serve_requests()
    assert (sandbox.pod / "req" / "web.result").read_text() == "n7 ok"
    assert sandbox.state("web") == "running"


@pytest.mark.parametrize(("answer", "line"), [
    ("error:app web: executable 'httpd' not found", "app web: executable 'httpd' not found"),
    ("error:the pod is stopping", "app web: the pod is stopping"),
])
def test_a_refusal_is_one_line_naming_the_app_once(answer: str, line: str) -> None:
    with pytest.raises(mutable.Refused) as err:  # FAILED_PRECONDITION to a CRI caller (an InvalidState)
        mutable.raise_refusal("web", answer)
    assert str(err.value) == line
    assert isinstance(err.value, InvalidState)


def test_ok_is_no_refusal_and_running_is_its_own_error() -> None:
    mutable.raise_refusal("web", "ok")
    with pytest.raises(mutable.AppRunning):
        mutable.raise_refusal("web", "error:" + mutable.RUNNING)
