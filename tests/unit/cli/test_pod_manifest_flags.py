"""rkt users' command lines with ``--pod-manifest`` (refused where rkt refuses them, before any
work and without root) and the annotation and label flags of run and prepare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrkt.cli import main as cli
from pyrkt.cli.commands import prepare
from pyrkt.cli.commands.apps import parse_pod_and_apps
from pyrkt.cli.commands.run import RUN_FLAGS, pod_request
from pyrkt.cli.flags import FlagSet
from pyrkt.errors import UsageError
from pyrkt.model.image import AppSpec, Image
from pyrkt.model.pod import PodManifest
from pyrkt.stage0.prepare import reify


def pyrkt(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, named", [
    (["docker://busybox"], "image docker://busybox"),
    (["--port=http:8080"], "--port"),
    (["--set-env=A=1"], "--set-env"),
    (["--set-env-file=/dev/null"], "--set-env-file"),
    (["--inherit-env"], "--inherit-env"),
    (["--pull-policy=never"], "--pull-policy=never"),
    (["--pull-policy=update"], "--pull-policy=update"),
    (["--store-only"], "--store-only"),
    (["--no-store"], "--no-store"),
    (["--user-annotation=a=b"], "--user-annotation"),
    (["--user-label=tier=front"], "--user-label"),
])
@pytest.mark.parametrize("command", ["run", "prepare"])
def test_flags_rkt_refuses_with_a_pod_manifest_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            command: str, args: list[str], named: str) -> None:
    code, out, err = pyrkt(capsys, f"--dir={tmp_path}", command, "--pod-manifest=/nonexistent.json", *args)
    assert (code, out) == (254, "")
    *notes, line = err.splitlines()  # --store-only and --no-store are rkt's deprecated spellings: a note each
    assert line.startswith("pyrkt: conflicting flags set with --pod-manifest: ") and named in line, err
    assert all("deprecated" in n for n in notes) and not (tmp_path / "pods").exists()


def test_prepare_refuses_sysctl_with_a_pod_manifest_and_run_takes_it_as_run_prepared_does(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = pyrkt(capsys, f"--dir={tmp_path}", "prepare", "--pod-manifest=/x.json", "--sysctl=kernel.shmmni=9")
    assert code == 254 and "conflicting flags set with --pod-manifest: --sysctl" in err
    values, apps = parse_pod_and_apps(FlagSet(RUN_FLAGS), ["--pod-manifest=/x.json", "--sysctl=kernel.shmmni=9"])
    from pyrkt.cli.commands.run import check_pod_manifest

    check_pod_manifest(values, apps, runtime_sysctl=True)  # no conflict


def test_an_app_flag_with_a_pod_manifest_and_no_image_must_follow_an_image(capsys: pytest.CaptureFixture[str],
                                                                          tmp_path: Path) -> None:
    code, _, err = pyrkt(capsys, f"--dir={tmp_path}", "run", "--pod-manifest=/x.json", "--exec=/bin/true")
    assert (code, err) == (254, "pyrkt: --exec must follow an image\n")


def test_the_pod_manifest_flag_reaches_the_pod_request() -> None:
    values, apps = parse_pod_and_apps(FlagSet(prepare.FLAGS), ["--quiet", "--pod-manifest=/srv/pod.json"])
    req = pod_request(values, apps)
    assert (req.pod_manifest, req.apps, req.pull_policy) == ("/srv/pod.json", [], "new")


IMAGE = Image(id="sha256:" + "cd" * 32, name="example.com/web",
              app=AppSpec(exec=("/bin/httpd",), user_annotations=(("from", "image"),)))


def test_annotations_and_user_labels_after_an_image_are_that_apps() -> None:
    values, apps = parse_pod_and_apps(FlagSet(RUN_FLAGS), [
        "--user-annotation=pod-owner=ops", "--user-label=tier=front",
        "img", "--name=a", "--annotation=example.com/team=blue", "--user-annotation=owner=me",
        "--user-label=role=web", "--user-label=role=api",
        "img", "--name=b"])
    req = pod_request(values, apps)
    assert (req.user_annotations, req.user_labels) == ([("pod-owner", "ops")], [("tier", "front")])
    a, b = reify(req, [IMAGE, IMAGE])
    assert a.annotations == (("example.com/team", "blue"),)
    assert (a.app.user_annotations, a.app.user_labels) == ((("owner", "me"),), (("role", "api"),))
    assert (b.annotations, b.app.user_annotations) == ((), (("from", "image"),))  # the image's stay
    d = PodManifest(apps=(a, b), user_annotations=tuple(req.user_annotations)).to_json()
    assert d["apps"][0]["annotations"] == [{"name": "example.com/team", "value": "blue"}]
    assert d["apps"][0]["app"]["userAnnotations"] == {"owner": "me"}
    assert d["apps"][0]["app"]["userLabels"] == {"role": "api"}
    assert d["userAnnotations"] == {"pod-owner": "ops"}
    assert PodManifest.from_json(json.loads(json.dumps(d))).apps[0].app.user_labels == (("role", "api"),)


@pytest.mark.parametrize("args, message", [
    (["--annotation=x=y"], "--annotation must follow an image"),
    (["img", "--annotation=Team=blue"], "invalid --annotation name 'Team': want an AC Identifier"),
    (["img", "--annotation=novalue"], "invalid --annotation 'novalue': want KEY=VALUE"),
    (["img", "--user-label=novalue"], "invalid --user-label 'novalue': want KEY=VALUE"),
    (["--user-annotation==v", "img"], "invalid --user-annotation '=v': want KEY=VALUE"),
])
def test_bad_annotation_flags_are_refused(args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        pod_request(*parse_pod_and_apps(FlagSet(RUN_FLAGS), args))
