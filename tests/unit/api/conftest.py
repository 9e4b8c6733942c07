"""The synthetic pod dirs of tests/unit/pods (``make_pod``, ``holder``) for the API's tests,
under a data dir the API's ``Config`` names."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402
from tests.unit.pods.conftest import holder, make_pod  # noqa: E402,F401

from pyrkt.config import Config  # noqa: E402
from pyrkt.pods.pod import ensure_dirs  # noqa: E402


@pytest.fixture
def pods_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data" / "pods"
    ensure_dirs(d)
    return d


@pytest.fixture
def config(tmp_path: Path, pods_dir: Path) -> Config:
    return Config(data_dir=str(tmp_path / "data"))
