"""`run --mds-register` before any pod is made: refused without a network reaching the host,
with a stage1 image, or when no metadata service runs for the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrkt.config import Config
from pyrkt.errors import PyrktError, UsageError
from pyrkt.stage0.run import RunOptions, check_options


def test_net_none_is_refused_as_rkt(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--mds-register does not work with --net=none"):
        check_options(Config(data_dir=str(tmp_path)), RunOptions(net=["none"], mds_register=True))


def test_a_stage1_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--mds-register works with the default and fly flavors"):
        check_options(Config(data_dir=str(tmp_path)), RunOptions(net=["host"], stage1_name="image", mds_register=True))


def test_no_service_is_an_error_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(PyrktError, match="could not reach the metadata service"):
        check_options(Config(data_dir=str(tmp_path)), RunOptions(net=["host"], mds_register=True))
    assert not (tmp_path / "pods").exists()


def test_without_the_flag_nothing_is_asked_of_a_service(tmp_path: Path) -> None:
    check_options(Config(data_dir=str(tmp_path)), RunOptions(net=["none"]))
