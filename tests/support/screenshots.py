"""Where tests save screenshots: an artifacts folder outside the tree.

``BINDER_SCREENSHOTS`` names the folder; ``make screenshots`` points it at
``docs/screenshots`` so the README shows the real thing. Without it, each
test run writes under ``$TMPDIR/binder-artifacts/<run>/`` and says where.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def screenshot_dir(run_id: str) -> Path:
    chosen = os.environ.get("BINDER_SCREENSHOTS")
    folder = Path(chosen) if chosen else Path(tempfile.gettempdir()) / "binder-artifacts" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    return folder
