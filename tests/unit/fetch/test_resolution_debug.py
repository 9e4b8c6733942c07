"""rkt's ``--debug`` lines on where each image comes from, as ``resolve_image`` decides it: the
words rkt's users grep for (``using image from local store for image name …``)."""

from __future__ import annotations

from pathlib import Path

from tests.support.images import build_oci_layout

from pyrkt.config import Config
from pyrkt.fetch.ui import FetchUI
from pyrkt.stage0.images import resolve_image
from pyrkt.store import Store


class Recording(FetchUI):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, message: str) -> None:
        self.lines.append(message)


def test_each_resolution_says_where_the_image_came_from(store: Store, tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data")
    layout = build_oci_layout(tmp_path / "web")
    ui = Recording()
    image = resolve_image(config, store, f"oci:{layout}", pull_policy="new", ui=ui)
    resolve_image(config, store, "web:latest", pull_policy="new", ui=ui)
    resolve_image(config, store, image.id[:19], pull_policy="never", ui=ui)
    assert ui.lines == [f"using image from OCI layout {layout}",
                        "using image from local store for image name web:latest",
                        f"using image from the store with hash {image.id}"]

