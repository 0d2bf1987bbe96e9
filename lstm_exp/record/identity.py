"""Stable identities of a run: a hash of what it computes, and of the code that computes it."""

import hashlib
import json
import subprocess
from functools import cache
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Keys that change where or whether a run is recorded, not what it computes.
_NOT_COMPUTATION = ("tracking", "dry_run", "resume", "hydra", "sweep")
# Task keys that change where training starts or how often it is saved, not the weights it ends with:
# a run continued from another must hash like it.
_TASK_NOT_COMPUTATION = ("checkpoint_every", "resume_from")


def computation_config(cfg: DictConfig) -> dict:
    """The resolved config without the keys that do not change the arrays."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    kept = {key: value for key, value in plain.items() if key not in _NOT_COMPUTATION}
    if isinstance(kept.get("task"), dict):
        kept["task"] = {k: v for k, v in kept["task"].items() if k not in _TASK_NOT_COMPUTATION}
    return kept


def config_hash(cfg: DictConfig) -> str:
    """sha256 (16 hex digits) of the resolved config's computation keys."""
    text = json.dumps(computation_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def code_version() -> str:
    """sha256 (16 hex digits) of every source file of the package and of the configs it runs with."""
    from lstm_exp.config.compose import CONFIG_DIR

    digest = hashlib.sha256()
    # Named relative to their roots, so that a checkout and an installed wheel hash alike.
    code = [*PACKAGE_DIR.rglob("*.py"), *PACKAGE_DIR.rglob("*.cc")]
    sources = [(p.relative_to(PACKAGE_DIR), p) for p in code]
    sources += [(Path("conf") / p.relative_to(CONFIG_DIR), p) for p in CONFIG_DIR.rglob("*.yaml")]
    for name, path in sorted(set(sources)):
        digest.update(str(name).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def git_commit() -> str:
    """The checkout's commit (with '+dirty' when it has changes), or 'unknown' outside git."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        return commit + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
