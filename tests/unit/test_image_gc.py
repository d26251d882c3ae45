"""``reaper.remove_old_images``: a full disk frees this farm's images, oldest first,
and never another farm's on the same engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.config import load_config
from workers import reaper
from workers.image_build import BUILT_LABEL


class Image:
    def __init__(self, tags: list[str], created: str) -> None:
        self.tags, self.attrs = tags, {"Created": created}


class Images:
    def __init__(self, images: list[Image], disk: list[float]) -> None:
        self.images, self.disk = images, disk
        self.removed: list[str] = []
        self.pruned: list[dict[str, Any]] = []

    def list(self, filters: dict[str, str]) -> list[Image]:
        assert filters == {"label": BUILT_LABEL}
        return list(self.images)

    def remove(self, tag: str, noprune: bool = False) -> None:
        self.removed.append(tag)
        self.disk[0] -= 20  # each image frees a fifth of the disk

    def prune(self, filters: dict[str, Any]) -> None:
        self.pruned.append(filters)


def test_a_full_disk_frees_only_this_farms_images_oldest_first(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = load_config(environ={"BINDER_DATA_DIR": str(tmp_path),
                                  "BINDER_REGISTRY": "127.0.0.1:5000",
                                  "BINDER_IMAGE_PREFIX": "binder-"})
    disk = [config.gc_high_percent + 1.0]
    images = Images([
        Image(["127.0.0.1:5000/binder-new:c2"], "2026-11-03"),
        Image(["127.0.0.1:5000/other-farm-old:c0"], "2026-11-01"),  # another farm's
        Image(["127.0.0.1:5000/binder-old:c1", "127.0.0.1:5000/other-farm-x:c1"],
              "2026-11-02"),
    ], disk)

    class Client:
        def __init__(self) -> None:
            self.images = images

    monkeypatch.setattr(reaper, "docker_client", lambda config, timeout: Client())
    monkeypatch.setattr(reaper, "disk_percent", lambda path: disk[0])

    assert reaper.remove_old_images(config) == 1
    assert images.removed == ["127.0.0.1:5000/binder-old:c1"]
    assert images.pruned == [{"dangling": True, "label": BUILT_LABEL}]
