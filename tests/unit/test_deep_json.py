"""Every reader of JSON from outside (config dirs, images being fetched, a pod dir read back)
answers a document nested 200,000 deep with one line naming the file and exit 254, never a
RecursionError: the bound lives in model/jsonio.py and each reader turns its ValueError into
its own PyrktError."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.support.images import build_oci_layout  # noqa: E402

from pyrkt.cli import main as cli  # noqa: E402
from pyrkt.errors import ImageError, NetworkSetupError, PyrktError, UsageError  # noqa: E402
from pyrkt.fetch import aci, auth, manifests  # noqa: E402
from pyrkt.kernel import fs  # noqa: E402
from pyrkt.network import config as netconf  # noqa: E402

DEEP = "[" * 200_000 + "]" * 200_000
TOO_DEEP = "nested more than 200 levels deep"


def pyrkt(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_deep_net_d_conf_is_one_network_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "10-deep.conf").write_text(DEEP)
    with pytest.raises(NetworkSetupError) as e:
        netconf.networks([tmp_path])
    assert str(e.value) == f"network config {tmp_path}/net.d/10-deep.conf: {TOO_DEEP}"


def test_a_deep_auth_d_file_is_one_usage_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "auth.d").mkdir()
    (tmp_path / "auth.d" / "deep.json").write_text(DEEP)
    with pytest.raises(UsageError) as e:
        auth.credentials_for("reg.example", [tmp_path], tmp_path / "no-config.json")
    assert str(e.value) == f"credentials file '{tmp_path}/auth.d/deep.json' is not readable JSON: {TOO_DEEP}"


def test_a_deep_docker_config_json_is_one_usage_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(DEEP)
    with pytest.raises(UsageError, match=TOO_DEEP):
        auth.credentials_for("reg.example", [], tmp_path / "config.json")


def test_deep_manifests_and_configs_of_images_are_image_errors() -> None:
    with pytest.raises(ImageError) as e:
        manifests.load_json(DEEP.encode(), "registry manifest")
    assert str(e.value) == f"registry manifest is not valid JSON: {TOO_DEEP}"
    with pytest.raises(ImageError, match=f"x.aci: the ACI manifest is not valid JSON: {TOO_DEEP}"):
        aci.parse_manifest(DEEP.encode(), image_id="sha512-0", diff_id="sha256:0", where="x.aci")


def test_a_damaged_pod_dir_file_is_one_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "pod").write_text(DEEP)
    with pytest.raises(PyrktError) as e:
        fs.read_json(tmp_path / "pod")
    assert str(e.value) == f"{tmp_path}/pod: invalid JSON: {TOO_DEEP}"


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


@pytest.mark.parametrize("part", ["index.json", "manifest", "config"])
def test_fetching_a_layout_with_a_deep_document_prints_one_line(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path, part: str) -> None:
    layout = build_oci_layout(tmp_path / "deep")
    index = json.loads((layout / "index.json").read_text())
    entry = index["manifests"][0]
    if part == "index.json":
        (layout / "index.json").write_text(DEEP)
    else:
        manifest = json.loads((layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes())
        if part == "config":
            manifest["config"].update(_blob(layout, DEEP.encode()))
            data = json.dumps(manifest).encode()
        else:
            data = DEEP.encode()
        entry.update(_blob(layout, data))
        (layout / "index.json").write_text(json.dumps(index))
    code, out, err = pyrkt(capsys, f"--dir={tmp_path / 'data'}", "fetch", f"oci:{layout}")
    assert (code, out) == (254, "")
    assert err.count("\n") == 1 and err.startswith("pyrkt: ") and err.endswith(f"{TOO_DEEP}\n"), err
    code, out, _ = pyrkt(capsys, f"--dir={tmp_path / 'data'}", "image", "list", "--no-legend")
    assert (code, out) == (0, "")  # nothing half-imported; the store still answers
