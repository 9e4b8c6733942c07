"""Resource isolators: Kubernetes quantities, rkt's per-app flags and their checks, which
isolator wins (the last of a name; flags over the image's) and the limits that result."""

from __future__ import annotations

import pytest

from pyrkt.cli.commands.apps import parse_pod_and_apps
from pyrkt.cli.commands.run import RUN_FLAGS
from pyrkt.cli.flags import FlagSet
from pyrkt.errors import UsageError
from pyrkt.model import isolators as iso
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.plan import Limits
from pyrkt.stage0.prepare import AppRequest, PodRequest, reify


@pytest.mark.parametrize(("text", "scale", "value"), [
    ("64M", 0, 64_000_000), ("128Mi", 0, 128 * 2 ** 20), ("1Gi", 0, 2 ** 30), ("1G", 0, 10 ** 9),
    ("4096", 0, 4096), ("1.5Ki", 0, 1536), ("1e3", 0, 1000), ("1.5E-3", 3, 2), ("0.5", 3, 500),
    ("500m", 3, 500), ("2", 3, 2000), ("250m", 0, 1), ("100k", 0, 100_000), ("1500u", 3, 2),
])
def test_quantities_are_kubernetes_and_round_up(text: str, scale: int, value: int) -> None:
    assert iso.parse_quantity(text, scale) == value


@pytest.mark.parametrize("text", ["", "M", "64MB", "1.2.3", "abc", "1e", "64 M", "0x10"])
def test_what_is_no_quantity_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        iso.parse_quantity(text)


def test_flags_become_rkts_isolators_request_and_limit_alike() -> None:
    assert iso.flag_isolators(memory="64M", cpu="500m", cpu_shares="512", oom_score_adj="100", pids_limit="50") == [
        (iso.MEMORY, {"request": "64M", "limit": "64M"}), (iso.CPU, {"request": "500m", "limit": "500m"}),
        (iso.CPU_SHARES, 512), (iso.OOM_SCORE_ADJ, 100), (iso.PIDS_LIMIT, 50)]
    assert iso.flag_isolators() == []


@pytest.mark.parametrize(("flags", "message"), [
    ({"memory": "16m"}, "memory limit of 1 bytes too low. Try a reasonable value, such as --memory=16M"),
    ({"memory": "lots"}, "invalid --memory=lots"),
    ({"memory": "1e999"}, "--memory=1e999: memory limit too high"),
    ({"memory": "8Ei"}, "--memory=8Ei: memory limit too high"),
    ({"cpu": "1m"}, "--cpu=1m: a CPU limit must be between 10m"),
    ({"cpu": "fast"}, "invalid --cpu=fast"),
    ({"cpu_shares": "1"}, "--cpu-shares=1: must be between 2 and 262144"),
    ({"oom_score_adj": "-1001"}, "--oom-score-adj=-1001: must be between -1000 and 1000"),
    ({"pids_limit": "-1"}, "--pids-limit=-1: must be between 0 and 4194304"),
    ({"pids_limit": "many"}, "invalid --pids-limit=many: want an integer"),
])
def test_bad_flags_are_refused_with_one_line_naming_them(flags: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace(".", r"\.").replace("(", r"\(")):
        iso.flag_isolators(**flags)


def test_the_run_command_line_gives_each_app_its_own_isolators() -> None:
    _, apps = parse_pod_and_apps(FlagSet(RUN_FLAGS), ["a", "--memory=64M", "--pids-limit=0", "b", "--cpu=2"])
    assert apps[0].isolators == [(iso.MEMORY, {"request": "64M", "limit": "64M"}), (iso.PIDS_LIMIT, 0)]
    assert apps[1].isolators == [(iso.CPU, {"request": "2", "limit": "2"})]
    with pytest.raises(UsageError, match="--memory must follow an image"):
        parse_pod_and_apps(FlagSet(RUN_FLAGS), ["--memory=64M", "a"])


def test_no_isolator_gives_the_default_pids_limit_only() -> None:
    assert iso.limits(()) == (Limits(pids=iso.DEFAULT_PIDS_LIMIT), None)


def test_each_isolator_sets_its_limits_and_names_itself_as_given() -> None:
    lim, oom = iso.limits(((iso.MEMORY, {"limit": "1Gi", "request": "512Mi"}), (iso.CPU, {"limit": "1500m"}),
                           (iso.CPU_SHARES, 100), (iso.PIDS_LIMIT, 0), (iso.OOM_SCORE_ADJ, -5),
                           ("os/linux/capabilities-retain-set", {"set": ["CAP_KILL"]})))
    assert lim == Limits(memory=2 ** 30, memory_request=2 ** 29, cpu=1500, cpu_shares=100, pids=0,
                         given=(iso.MEMORY, iso.CPU, iso.CPU_SHARES, iso.PIDS_LIMIT))
    assert oom == -5


def test_the_last_isolator_of_a_name_wins_as_in_rkt() -> None:
    lim, _ = iso.limits(((iso.MEMORY, {"limit": "1G"}), (iso.MEMORY, {"limit": "2G"})))
    assert (lim.memory, lim.given) == (2 * 10 ** 9, (iso.MEMORY,))


IMAGE = Image(id="sha256:" + "ab" * 32, name="example.com/db", app=AppSpec(
    exec=("/bin/db",), isolators=((iso.MEMORY, {"limit": "1G", "request": "1G"}), (iso.CPU_SHARES, 100),
                                  ("os/linux/no-new-privileges", True))))


def test_flags_replace_the_images_isolators_of_their_name_in_the_pod_manifest() -> None:
    req = PodRequest(apps=[AppRequest(image="x", isolators=iso.flag_isolators(memory="64M", oom_score_adj="5"))])
    [app] = reify(req, [IMAGE])
    assert app.app.isolators == ((iso.CPU_SHARES, 100), ("os/linux/no-new-privileges", True),
                                 (iso.MEMORY, {"request": "64M", "limit": "64M"}), (iso.OOM_SCORE_ADJ, 5))
    lim, oom = iso.limits(app.app.isolators)
    assert (lim.memory, lim.cpu_shares, oom) == (64_000_000, 100, 5)
    [plain] = reify(PodRequest(apps=[AppRequest(image="x")]), [IMAGE])
    assert plain.app.isolators == IMAGE.app.isolators  # type: ignore[union-attr]


@pytest.mark.parametrize(("isolator", "message"), [
    ((iso.MEMORY, {"limit": "a lot"}), "invalid quantity 'a lot'"),
    ((iso.MEMORY, "1G"), "want an object with request and limit"),
    ((iso.MEMORY, {"limit": "-1G"}), "cannot be negative"),
    ((iso.MEMORY, {"limit": "1e999"}), "cannot be above 9223372036854775807 bytes"),
    ((iso.MEMORY, {"request": "99999999999999999999999T"}), "cannot be above"),
    ((iso.CPU, {"request": "1e30", "limit": "1"}), "a CPU request must be between 0 and 1000000 cores"),
    ((iso.CPU, {"limit": "1m"}), "a CPU limit must be between 10m"),
    ((iso.CPU, {"limit": "1", "default": True}), "default must be false"),
    ((iso.CPU_SHARES, 1), "must be between 2 and 262144"),
    ((iso.OOM_SCORE_ADJ, "5"), "want an integer"),
    ((iso.PIDS_LIMIT, True), "want an integer"),
])
def test_a_bad_image_isolator_fails_the_prepare_naming_app_and_isolator(isolator: tuple[str, object],
                                                                      message: str) -> None:
    image = IMAGE.replace(app=AppSpec(exec=("/bin/db",), isolators=(isolator,)))
    with pytest.raises(UsageError, match=f"app db: isolator {isolator[0]}: .*{message}"):
        reify(PodRequest(apps=[AppRequest(image="x")]), [image])


def test_status_shows_what_was_set_and_leaves_out_what_was_not() -> None:
    assert iso.describe(Limits(memory=5, cpu=200, pids=4096), 7) == {"memory": 5, "cpu_millis": 200, "pids": 4096,
                                                                     "oom_score_adj": 7}
    assert iso.describe(Limits(), None) == {}
