"""AC Names and AC Identifiers as appc and rkt check them (schema/types assertValid)."""

from __future__ import annotations

import pytest

from pyrkt.errors import UsageError
from pyrkt.model.names import check_app_name, is_ac_identifier, is_ac_name


def test_identifiers_are_what_appc_checks_not_its_documented_pattern() -> None:
    for text in ["shorthash--8", "a", "coreos.com/etcd", "a_b", "x~y", "a/-/b", "a..b"]:
        assert is_ac_identifier(text), text
    for text in ["", "-a", "a-", "a/", ".a", "A", "a b", "a:b", "é"]:
        assert not is_ac_identifier(text), text


def test_ac_names_allow_inner_runs_of_hyphens_only() -> None:
    assert is_ac_name("shorthash--8") and is_ac_name("a-b-c")
    assert not is_ac_name("a.b") and not is_ac_name("a_b") and not is_ac_name("-a") and not is_ac_name("")
    assert check_app_name("shorthash--8") == "shorthash--8"
    with pytest.raises(UsageError, match="invalid app name 'a.b'"):
        check_app_name("a.b")


def test_default_app_names_are_sanitized_as_rkt_does() -> None:
    from pyrkt.model.names import app_name_from_image

    assert app_name_from_image("example.com/shorthash--8") == "shorthash--8"
    assert app_name_from_image("example.com/My_App.v2") == "my-app-v2"
    assert app_name_from_image("registry-1.docker.io/library/redis:7") == "redis"
    assert app_name_from_image("example.com/_x_") == "x"
