"""The farm's registry spoken to straight through its HTTP API: tiny images pushed and
tags listed without a Docker engine."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import requests

from common.config import Config
from workers.registry import split_image

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class Registry:
    """Pushes tiny images straight through the registry's HTTP API (no engine needed)."""

    def __init__(self, config: Config) -> None:
        self.base = config.registry_url
        self.session = requests.Session()
        if config.registry_username:
            self.session.auth = (config.registry_username, config.registry_password)

    def blob(self, repository: str, data: bytes) -> dict[str, Any]:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        start = self.session.post(f"{self.base}/v2/{repository}/blobs/uploads/", timeout=10)
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        done = self.session.put(location, params={"digest": digest}, data=data, timeout=10,
                                headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text
        return {"digest": digest, "size": len(data)}

    def push(self, image: str, variant: str = "") -> None:
        """A one-layer image whose config names ``image`` (so every tag has its own digest)
        and ``variant`` (another image under the same tag)."""
        _, repository, tag = split_image(image)
        layer = self.blob(repository, b"layer of " + image.encode())
        labels = {"image": image, **({"variant": variant} if variant else {})}
        config = self.blob(repository, json.dumps({
            "architecture": "amd64", "os": "linux", "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                    "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                               **config},
                    "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                **layer}]}
        response = self.session.put(f"{self.base}/v2/{repository}/manifests/{tag}",
                                    data=json.dumps(manifest), timeout=10,
                                    headers={"Content-Type": MANIFEST})
        assert response.status_code == 201, response.text

    def tags(self, repository: str) -> set[str]:
        response = self.session.get(f"{self.base}/v2/{repository}/tags/list", timeout=10)
        return set(response.json().get("tags") or []) if response.status_code == 200 else set()
