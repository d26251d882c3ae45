"""The API key: configured, or generated once and kept under the data dir."""

from __future__ import annotations

import os
import secrets
import time

from common.config import Config


def ensure_api_key(config: Config) -> str:
    """The configured key, or the one saved under the data dir (made on first use)."""
    if config.api_key:
        return str(config.api_key)
    path = config.data_path / "api-key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        time.sleep(0.1)
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key
