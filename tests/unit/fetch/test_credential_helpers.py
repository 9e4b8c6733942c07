"""Docker credential helpers (``credHelpers``, ``credsStore`` in config.json), driven through their
real protocol: each test writes a small ``docker-credential-<name>`` script into a dir on PATH
that logs what it was asked and answers on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrkt.errors import FetchError
from pyrkt.fetch.auth import credentials_for
from pyrkt.fetch.reference import DOCKER_HUB

SECRET = "hElper-s3cret"


class Helpers:
    """A dir on PATH for ``docker-credential-*`` scripts, and the log of their calls."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "calls.log"

    def add(self, name: str, *, user: str = "alice", secret: str = SECRET, stdout: str | None = None,
            stderr: str = "", code: int = 0) -> None:
        """``docker-credential-<name>``: logs ``<name> <args> <stdin>``, then answers ``stdout``
        (default: the protocol's JSON for the server URL it was given) and exits ``code``."""
        answer = stdout if stdout is not None else \
            json.dumps({"ServerURL": "@URL@", "Username": user, "Secret": secret})
        script = self.bin / f"docker-credential-{name}"
        script.write_text(
            "#!/bin/sh\n"
            "url=$(cat)\n"
            f"printf '%s %s %s\\n' {name} \"$*\" \"$url\" >> {self.log}\n"
            f"cat <<'EOF' | sed \"s|@URL@|$url|\"\n{answer}\nEOF\n"
            f"printf '%s' '{stderr}' >&2\n"
            f"exit {code}\n")
        script.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    h = Helpers(tmp_path)
    monkeypatch.setenv("PATH", f"{h.bin}:/usr/bin:/bin")
    return h


def docker_config(tmp_path: Path, value: object) -> Path:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def test_creds_store_supplies_credentials_for_a_registry_asked_by_its_host(tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("test")
    cfg = docker_config(tmp_path, {"credsStore": "test"})
    creds = credentials_for("reg.example:5000", [], cfg)
    assert creds is not None and (creds.user, creds.password) == ("alice", SECRET)
    assert creds.origin == "credential helper docker-credential-test"
    assert SECRET not in repr(creds)
    assert helpers.calls() == ["test get reg.example:5000"]


def test_creds_store_is_asked_for_the_auths_key_as_docker_login_wrote_it(tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("test")
    cfg = docker_config(tmp_path, {"credsStore": "test", "auths": {"http://127.0.0.1:5000": {}}})
    assert credentials_for("127.0.0.1:5000", [], cfg) is not None
    assert helpers.calls() == ["test get http://127.0.0.1:5000"]


def test_docker_hub_is_asked_for_by_its_index_url(tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("hub")
    cfg = docker_config(tmp_path, {"credHelpers": {"docker.io": "hub"}})
    assert credentials_for(DOCKER_HUB, [], cfg) is not None
    assert helpers.calls() == ["hub get https://index.docker.io/v1/"]


def test_cred_helpers_win_over_auths_and_creds_store_and_only_the_pulled_registry_is_asked(
        tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("per-registry", user="from-helper")
    helpers.add("broken", code=1, stdout="keychain locked")
    helpers.add("default", user="from-store")
    cfg = docker_config(tmp_path, {
        "credsStore": "default",
        "credHelpers": {"a.example": "per-registry", "b.example": "broken"},
        "auths": {"a.example": {"username": "from-auths", "password": "pw"},
                  "c.example": {"username": "from-auths", "password": "pw"}},
    })
    creds = credentials_for("a.example", [], cfg)
    assert creds is not None and creds.user == "from-helper"
    assert helpers.calls() == ["per-registry get a.example"]
    creds = credentials_for("c.example", [], cfg)
    assert creds is not None and (creds.user, creds.origin) == ("from-auths", str(cfg))
    creds = credentials_for("d.example", [], cfg)
    assert creds is not None and creds.user == "from-store"
    assert helpers.calls() == ["per-registry get a.example", "default get d.example"]


def test_an_auth_d_docker_auth_file_overrides_helpers_which_then_do_not_run(tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("test")
    cfg = docker_config(tmp_path, {"credsStore": "test", "credHelpers": {"reg.example": "test"}})
    (tmp_path / "conf" / "auth.d").mkdir(parents=True)
    (tmp_path / "conf" / "auth.d" / "r.json").write_text(json.dumps({
        "rktKind": "dockerAuth", "rktVersion": "v1", "registries": ["reg.example"],
        "credentials": {"user": "from-rkt", "password": "pw"}}))
    creds = credentials_for("reg.example", [tmp_path / "conf"], cfg)
    assert creds is not None and creds.user == "from-rkt"
    assert helpers.calls() == []


def test_a_helper_without_credentials_for_the_registry_means_anonymous(tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("test", stdout="credentials not found in native keychain", code=1)
    cfg = docker_config(tmp_path, {"credsStore": "test"})
    assert credentials_for("reg.example", [], cfg) is None
    assert helpers.calls() == ["test get reg.example"]


def test_a_missing_helper_is_one_line_naming_it_and_the_registry(tmp_path: Path, helpers: Helpers) -> None:
    cfg = docker_config(tmp_path, {"credHelpers": {"reg.example": "gone"}})
    with pytest.raises(FetchError) as err:
        credentials_for("reg.example", [], cfg)
    assert str(err.value) == (f"credential helper docker-credential-gone for reg.example (from credHelpers of {cfg}): "
                              "docker-credential-gone is not on PATH")


def test_a_failing_helper_is_one_line_with_its_complaint_and_never_the_secret(tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("test", stdout="", stderr="cannot unlock the keyring", code=3)
    cfg = docker_config(tmp_path, {"credsStore": "test"})
    with pytest.raises(FetchError) as err:
        credentials_for("reg.example", [], cfg)
    assert str(err.value) == (f"credential helper docker-credential-test for reg.example (from credsStore of {cfg}): "
                              "it failed (exit 3): cannot unlock the keyring")
    helpers.add("test", code=1)  # the whole answer, secret and all, but a failure exit code
    with pytest.raises(FetchError) as err:
        credentials_for("reg.example", [], cfg)
    assert str(err.value).endswith("it failed (exit 1)") and SECRET not in str(err.value)


def test_a_helper_answer_that_is_not_the_protocol_is_refused_without_echoing_it(
        tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("test", stdout=f"user=alice password={SECRET}")
    cfg = docker_config(tmp_path, {"credsStore": "test"})
    with pytest.raises(FetchError, match="its answer is not JSON with Username and Secret") as err:
        credentials_for("reg.example", [], cfg)
    assert SECRET not in str(err.value)


def test_an_identity_token_from_a_helper_is_taken_as_one_with_no_user_name(tmp_path: Path, helpers: Helpers) -> None:
    helpers.add("test", user="<token>")
    cfg = docker_config(tmp_path, {"credsStore": "test"})
    creds = credentials_for("reg.example", [], cfg)
    assert creds is not None
    assert (creds.identity_token, creds.user, creds.password) == (SECRET, "", "")
    assert creds.origin == "credential helper docker-credential-test"
    assert SECRET not in repr(creds) and "identity_token='***'" in repr(creds)
    assert helpers.calls() == ["test get reg.example"]
