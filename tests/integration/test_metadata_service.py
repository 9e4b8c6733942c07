"""`pyrkt metadata-service` and `run --mds-register` with real pods on pyrkt's CNI default
network: the appc ACE validator (built here from Debian's copy of the appc spec) passes every
check, a pod keeps its registration across a restart of the service, and a pod that cannot
register is refused as rkt refuses it."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.integration.netenv import free_port
from tests.integration.pods import Cli
from tests.support import ace

Service = Callable[[], subprocess.Popen[str]]


@pytest.fixture
def service(net_env: tuple[Cli, str, Path], tmp_path: Path) -> Iterator[Service]:
    """Starts `pyrkt metadata-service` for the data dir (again, after a stop) on one free port;
    every one started is stopped by its PID at the end."""
    cli = net_env[0]
    port = free_port()
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        log = open(tmp_path / f"service-{len(started)}.log", "w+")  # noqa: SIM115 (read while it runs)
        p = cli.popen("metadata-service", f"--listen-port={port}", stdout=subprocess.DEVNULL, stderr=log)
        p.log = log  # type: ignore[attr-defined]
        started.append(p)
        deadline = time.monotonic() + 20
        while "running on port" not in log_of(p):
            assert p.poll() is None, log_of(p)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(20)
        p.log.close()  # type: ignore[attr-defined]


def log_of(p: subprocess.Popen[str]) -> str:
    return Path(p.log.name).read_text()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if ace.go_missing():
        pytest.skip(ace.MISSING_GO)
    work = tmp_path_factory.mktemp("ace")
    return ace.validator_acis(ace.build_validator(work), work)


def test_the_ace_validator_passes_every_check(net_env: tuple[Cli, str, Path], service: Service,
                                              validator: tuple[Path, Path]) -> None:
    cli = net_env[0]
    svc = service()
    main, sidekick = validator
    # as the appc spec runs it (its images unsigned here: --insecure-options=image)
    r = cli("run", "--insecure-options=image", "--mds-register", "--volume", "database,kind=empty", str(main),
            str(sidekick), timeout=120)
    out = r.out + r.err
    assert r.code == 0, r
    for check in ("prestart OK", "main OK", "sidekick OK", "poststop OK"):
        assert check in out, r
    assert "FAIL" not in out and "==>" not in out, r
    log = log_of(svc)
    for endpoint in ("pod/manifest", "pod/uuid", "pod/annotations", "apps/ace-validator-main/image/id",
                     "apps/ace-validator-sidekick/annotations", "pod/hmac/sign", "pod/hmac/verify"):
        assert f"/<token>/acMetadata/v1/{endpoint} - 200" in log, log


def wget(cli: Cli, uuid: str, path: str, post: str = "") -> str:
    data = f"--post-data='{post}' " if post else ""
    r = cli("enter", uuid, "/bin/sh", "-c", f'wget -q -O- {data}"$AC_METADATA_URL/acMetadata/v1{path}"')
    assert r.code == 0, r
    return r.out


def test_a_running_pod_is_served_again_after_the_service_restarts(net_env: tuple[Cli, str, Path],
                                                                   service: Service) -> None:
    cli, image, _ = net_env
    svc = service()
    uuid = cli("run", "--detach", "--mds-register", image, "--exec=/bin/sleep", "--", "1000").out.strip()
    try:
        url = cli("enter", uuid, "/bin/sh", "-c", "echo $AC_METADATA_URL").out.strip()
        assert url.startswith("http://172.16.28.1:") and len(url.rsplit("/", 1)[1]) == 32, url
        assert wget(cli, uuid, "/pod/uuid") == uuid
        signature = wget(cli, uuid, "/pod/hmac/sign", "content=hello")
        svc.send_signal(signal.SIGKILL)  # a crash: nothing saved on the way out
        svc.wait(20)
        service()
        assert wget(cli, uuid, "/pod/uuid") == uuid
        form = f"content=hello&uuid={uuid}&signature={signature.replace('+', '%2B').replace('/', '%2F')}"
        wget(cli, uuid, "/pod/hmac/verify", form)  # 200: the key outlived the service
    finally:
        cli("stop", uuid)
        cli("rm", uuid)


@pytest.mark.parametrize("flags", [["--net=host"], ["--stage1-name=fly"]])
def test_pods_on_the_hosts_network_reach_it_on_loopback(net_env: tuple[Cli, str, Path], service: Service,
                                                        tmp_path: Path, flags: list[str]) -> None:
    cli, image, _ = net_env
    service()
    save = tmp_path / "uuid"
    r = cli("run", *flags, "--mds-register", f"--uuid-file-save={save}", image, "--exec=/bin/sh", "--", "-c",
            'echo "$AC_METADATA_URL"; wget -q -O- "$AC_METADATA_URL/acMetadata/v1/pod/uuid"')
    assert r.code == 0, r
    assert "http://127.0.0.1:" in r.out and save.read_text().strip() in r.out, r


def test_without_a_service_the_pod_is_refused_and_nothing_is_left(net_env: tuple[Cli, str, Path]) -> None:
    cli, image, _ = net_env
    before = sorted(p.name for p in (cli.data_dir / "pods").glob("*/*"))
    r = cli("run", "--mds-register", image, "--exec=/bin/true")
    assert (r.code, r.out) == (254, ""), r
    assert r.err.startswith("pyrkt: --mds-register: could not reach the metadata service") and \
        r.err.count("\n") == 1, r
    assert sorted(p.name for p in (cli.data_dir / "pods").glob("*/*")) == before
    r = cli("run", "--mds-register", "--net=none", image, "--exec=/bin/true")
    assert r.code == 254 and "--mds-register does not work with --net=none" in r.err, r
    # run-prepared checks first too: the prepared pod stays prepared (as rkt)
    uuid = cli("prepare", "--quiet", image, "--exec=/bin/true").out.strip()
    r = cli("run-prepared", "--mds-register", uuid)
    assert r.code == 254 and "could not reach the metadata service" in r.err, r
    assert cli.status(uuid)["state"] == "prepared"
    cli("rm", uuid)


def test_without_the_flag_pods_run_as_ever(net_env: tuple[Cli, str, Path], service: Service) -> None:
    cli, image, _ = net_env
    service()
    r = cli("run", image, "--exec=/bin/sh", "--", "-c", 'echo "url=$AC_METADATA_URL"')
    assert r.code == 0 and "url=\n" in r.out, r
