"""The sandbox launcher the CRI server keeps started ahead: a launch uses the spare one and starts
the next; a spare whose request never comes (the server ends) exits quietly."""

from __future__ import annotations

import pickle

import pytest

from pyrkt import errors
from pyrkt.api.cri import launch


def test_a_launch_takes_the_spare_and_starts_the_next_which_close_ends_quietly() -> None:
    launcher = launch.Launcher()
    bad = pickle.dumps((None, None, None))  # not a config: the launcher fails without an answer
    with pytest.raises(errors.PyrktError, match="the sandbox launcher gave no answer"):
        launcher.launch(bad)
    first = launcher._spare
    assert first is not None and first.poll() is None  # started ahead, waiting for its request
    with pytest.raises(errors.PyrktError, match="gave no answer"):
        launcher.launch(bad)
    second = launcher._spare
    assert first.returncode is not None and second is not None and second is not first  # the spare was used
    launcher.close()
    assert second.returncode == 0 and launcher._spare is None
    launcher.close()  # idempotent


def test_a_spare_launcher_that_died_is_replaced() -> None:
    launcher = launch.Launcher()
    launcher._spare = launch.Launcher._start()
    launcher._spare.kill()
    launcher._spare.wait()
    with pytest.raises(errors.PyrktError, match="gave no answer"):
        launcher.launch(pickle.dumps((None, None, None)))
    launcher.close()


def test_what_a_spare_launcher_imports_ahead_exists() -> None:
    import importlib

    for name in launch.PRIMED:  # a module renamed or gone would make every launcher fail at once
        importlib.import_module(name)
