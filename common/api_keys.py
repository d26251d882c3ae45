"""The API key and Flower's password: configured, or generated once and kept under the
data dir."""

from __future__ import annotations

import os
import secrets
import time

from common.config import Config


def ensure_api_key(config: Config) -> str:
    """The configured key, or the one saved under the data dir (made on first use)."""
    return config.api_key or saved_secret(config, "api-key")


def ensure_flower_password(config: Config) -> str:
    """Flower's configured password, or the one saved under the data dir."""
    return config.flower_password or saved_secret(config, "flower-password")


def saved_secret(config: Config, file_name: str) -> str:
    """The secret in ``DATA_DIR/file_name``, made (mode 0600) by the first process asking."""
    path = config.data_path / file_name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        time.sleep(0.1)
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret
