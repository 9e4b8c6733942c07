"""Docker credential helpers against the real Docker Distribution registry with HTTP basic auth
(the ``basic_registry`` fixture of test_registry.py): a ``credsStore`` and a ``credHelpers``
helper (small ``docker-credential-*`` scripts on PATH) supply the password from a config.json
found through ``DOCKER_CONFIG`` or ``HOME``; a failing helper is one line without the secret.
With token auth (``token_registry``), a helper answering an identity token (Username
``<token>``) gets its refresh token traded for the bearer token by an OAuth2 POST."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from tests.conftest import Pyrkt
from tests.integration.test_registry import (  # noqa: F401 (fixtures)
    PASSWORD,
    USER,
    Registry,
    TokenServer,
    basic_registry,
    one_line_error,
    pytestmark,
    token_registry,
)


@pytest.fixture
def private(basic_registry: tuple[Registry, str]) -> tuple[Registry, str]:  # noqa: F811
    """(registry, docker:// reference) of an image that needs USER and PASSWORD to pull."""
    return basic_registry


def helper(bin_dir: Path, name: str, *, password: str = PASSWORD, code: int = 0, stderr: str = "",
           user: str = USER) -> Path:
    """``docker-credential-<name>``: logs ``<args> <server URL>`` next to itself and answers
    the protocol's JSON with USER and ``password`` (exit ``code``; ``stderr`` a complaint)."""
    bin_dir.mkdir(exist_ok=True)
    log = bin_dir / f"{name}.log"
    script = bin_dir / f"docker-credential-{name}"
    answer = json.dumps({"ServerURL": "", "Username": user, "Secret": password})
    script.write_text("#!/bin/sh\n"
                      "url=$(cat)\n"
                      f"echo \"$* $url\" >> {log}\n"
                      f"[ {code} -eq 0 ] && echo '{answer}'\n"
                      f"echo '{stderr}' >&2\n"
                      f"exit {code}\n")
    script.chmod(0o755)
    return log


def environment(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    return {**env, "PATH": f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", **extra}


def write_config(directory: Path, value: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(value))
    return directory


def test_a_creds_store_helper_supplies_the_password(pyrkt: Pyrkt, private: tuple[Registry, str],
                                                    tmp_path: Path) -> None:
    reg, ref = private
    log = helper(tmp_path / "bin", "test")
    docker_dir = write_config(tmp_path / "docker", {"credsStore": "test"})
    r = pyrkt("--insecure-options=http", "fetch", ref,
              env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    assert r.code == 0, r
    assert log.read_text().splitlines() == [f"get {reg.host}"]
    assert f"{reg.host}/private/app" in pyrkt("image", "list", "--no-legend").out


def test_a_cred_helpers_helper_from_home_docker_config_wins_over_creds_store(
        pyrkt: Pyrkt, private: tuple[Registry, str], tmp_path: Path) -> None:
    reg, ref = private
    log = helper(tmp_path / "bin", "per-registry")
    store_log = helper(tmp_path / "bin", "default", password="not-the-Pa55word")
    home = tmp_path / "home"
    write_config(home / ".docker", {"credsStore": "default", "credHelpers": {reg.host: "per-registry"}})
    r = pyrkt("--insecure-options=http", "run", "--net=none", ref, timeout=120,
              env=environment(tmp_path / "bin", HOME=str(home)))
    assert r.code == 0 and r.out == "basic auth works\n", r
    assert log.read_text().splitlines() == [f"get {reg.host}"]
    assert not store_log.exists()


def test_a_wrong_password_from_a_helper_is_refused_naming_the_helper_not_the_password(
        pyrkt: Pyrkt, private: tuple[Registry, str], tmp_path: Path) -> None:
    reg, ref = private
    helper(tmp_path / "bin", "test", password="wrong-Pa55word")
    docker_dir = write_config(tmp_path / "docker", {"credHelpers": {reg.host: "test"}})
    r = pyrkt("--insecure-options=http", "fetch", ref,
              env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    line = one_line_error(r, r.code, r.err)
    assert f"refused the credentials of user '{USER}' from credential helper docker-credential-test" in line
    assert "wrong-Pa55word" not in r.err + r.out


def test_a_failing_helper_is_one_line_naming_it_and_the_registry_and_nothing_is_stored(
        pyrkt: Pyrkt, private: tuple[Registry, str], tmp_path: Path) -> None:
    reg, ref = private
    helper(tmp_path / "bin", "test", code=1, stderr="the keyring is locked")
    docker_dir = write_config(tmp_path / "docker", {"credsStore": "test"})
    r = pyrkt("--insecure-options=http", "fetch", ref,
              env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    line = one_line_error(r, r.code, r.err)
    assert line == (f"pyrkt: credential helper docker-credential-test for {reg.host} (from credsStore of "
                    f"{docker_dir / 'config.json'}): it failed (exit 1): the keyring is locked")
    assert PASSWORD not in r.err + r.out
    assert pyrkt("image", "list", "--no-legend").out.strip() == ""


def test_a_missing_helper_is_one_line_naming_it(pyrkt: Pyrkt, private: tuple[Registry, str],
                                                tmp_path: Path) -> None:
    reg, ref = private
    docker_dir = write_config(tmp_path / "docker", {"credHelpers": {reg.host: "absent"}})
    r = pyrkt("--insecure-options=http", "fetch", ref,
              env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    line = one_line_error(r, r.code, r.err)
    assert line.endswith("docker-credential-absent is not on PATH") and reg.host in line


# -- identity tokens ----------------------------------------------------------------------------

def test_an_identity_token_from_a_helper_pulls_from_a_token_registry_by_an_oauth2_post(
        pyrkt: Pyrkt, token_registry: tuple[Registry, TokenServer, str], tmp_path: Path) -> None:  # noqa: F811
    reg, tokens, ref = token_registry
    log = helper(tmp_path / "bin", "idtoken", user="<token>", password=TokenServer.REFRESH_TOKEN)
    docker_dir = write_config(tmp_path / "docker", {"credHelpers": {reg.host: "idtoken"}})
    tokens.requests.clear()
    tokens.posts.clear()
    r = pyrkt("--insecure-options=http", "fetch", ref, env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    assert r.code == 0, r
    assert log.read_text().splitlines() == [f"get {reg.host}"]
    assert tokens.requests == []  # no GET: the identity token went by POST only
    assert tokens.posts and tokens.posts[0] == {
        "grant_type": ["refresh_token"], "refresh_token": [TokenServer.REFRESH_TOKEN],
        "service": ["pyrkt-test-registry"], "scope": ["repository:private/tok:pull"], "client_id": ["pyrkt"]}
    assert f"{reg.host}/private/tok" in pyrkt("image", "list", "--no-legend").out
    assert TokenServer.REFRESH_TOKEN not in r.out + r.err


def test_a_wrong_identity_token_from_a_helper_is_one_line_naming_the_helper_not_the_token(
        pyrkt: Pyrkt, token_registry: tuple[Registry, TokenServer, str], tmp_path: Path) -> None:  # noqa: F811
    reg, _, ref = token_registry
    helper(tmp_path / "bin", "idtoken", user="<token>", password="st4le-refresh-t0ken")
    docker_dir = write_config(tmp_path / "docker", {"credsStore": "idtoken"})
    r = pyrkt("--insecure-options=http", "fetch", ref, env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    line = one_line_error(r, r.code, r.err)
    assert line == (f"pyrkt: {reg.host}/private/tok: the token service refused the identity token from "
                    "credential helper docker-credential-idtoken (400)")
    assert "st4le-refresh-t0ken" not in r.err + r.out
    assert pyrkt("image", "list", "--no-legend").out.strip() == ""


def test_an_identity_token_in_config_json_cannot_be_used_with_a_basic_auth_registry(
        pyrkt: Pyrkt, private: tuple[Registry, str], tmp_path: Path) -> None:
    reg, ref = private
    docker_dir = write_config(tmp_path / "docker", {"auths": {reg.host: {"identitytoken": "b4sic-refresh-t0ken"}}})
    r = pyrkt("--insecure-options=http", "fetch", ref, env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    line = one_line_error(r, r.code, r.err)
    assert line.startswith(f"pyrkt: {reg.host}/private/app: {reg.host} asks for HTTP basic auth, which cannot use "
                           f"the identity token from {docker_dir / 'config.json'}"), line
    assert "b4sic-refresh-t0ken" not in r.err + r.out


def test_an_identitytoken_that_docker_login_wrote_in_config_json_pulls_from_a_token_registry(
        pyrkt: Pyrkt, token_registry: tuple[Registry, TokenServer, str], tmp_path: Path) -> None:  # noqa: F811
    reg, tokens, ref = token_registry
    auth = base64.b64encode(f"{USER}:".encode()).decode()
    docker_dir = write_config(tmp_path / "docker", {"auths": {
        reg.host: {"auth": auth, "identitytoken": TokenServer.REFRESH_TOKEN}}})
    tokens.posts.clear()
    r = pyrkt("--insecure-options=http", "fetch", ref, env=environment(tmp_path / "bin", DOCKER_CONFIG=str(docker_dir)))
    assert r.code == 0, r
    assert [p["refresh_token"] for p in tokens.posts][:1] == [[TokenServer.REFRESH_TOKEN]]
    assert f"{reg.host}/private/tok" in pyrkt("image", "list", "--no-legend").out
