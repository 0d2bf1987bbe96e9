"""A folder on a filesystem of a chosen size: a tmpfs mounted over it (mounting needs root).

Where a test needs a disk that fills up: a full one, or one that fills part way through a write.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest


def _mount(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=60, check=False)


@contextlib.contextmanager
def small_filesystem(folder: Path, size: int):
    """Mounts a tmpfs of `size` bytes on `folder` (made if missing) for the block; skips the test
    where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)])
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        # A file still open there (a database connection the test process keeps) makes umount fail
        # with "target is busy": detached lazily then, so that no mount outlives the test.
        if subprocess.run(["umount", str(folder)], capture_output=True, timeout=60).returncode != 0:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True, timeout=60, check=False)


def resize(folder: Path, size: int) -> None:
    """Gives the mounted tmpfs at `folder` a new size (the disk freed, or filled)."""
    resized = _mount(["-o", f"remount,size={size}", str(folder)])
    assert resized.returncode == 0, resized.stderr
