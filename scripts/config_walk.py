"""Follows the composed config through one tracked job, as data: the files it visits, and how often
it steps back to an earlier layer or returns to a file it had left.

    python scripts/config_walk.py [overrides...]      (default: model=stacked)

Every Python call made while the job runs is looked at (`sys.setprofile`); a call is a visit of the
config when one of its arguments is the composed `DictConfig` or a node of it. The visits in call
order give the walk. Layers in the order data flows: config, compute, record, jobs, cli (DESIGN.md).
- files: the distinct package files the config visits;
- layer reversals: steps from one visit to the next whose layer comes earlier in that order;
- returns: visits of a file the walk had left for another one before.
The job records into a temporary SQLite store; its report is not printed.
"""

import functools
import sys
import tempfile
from pathlib import Path

from omegaconf import DictConfig, ListConfig

import lstm_exp

LAYERS = ("config", "compute", "record", "jobs", "cli")


def _node_ids(cfg) -> set[int]:
    """ids of the config and of every node under it (DictConfig and ListConfig)."""
    found, todo = set(), [cfg]
    while todo:
        node = todo.pop()
        found.add(id(node))
        children = node.values() if isinstance(node, DictConfig) else node
        todo += [child for child in children if isinstance(child, DictConfig | ListConfig)]
    return found


PACKAGE = str(Path(lstm_exp.__file__).resolve().parent) + "/"


@functools.cache
def _package_file(filename: str) -> str | None:
    """The file's path inside the package, or None (cached: the profiler asks at every call)."""
    return filename.removeprefix(PACKAGE) if filename.startswith(PACKAGE) else None


def walk(overrides: list[str]) -> list[str]:
    """The package files the config visits, one entry per call that receives it, in call order."""
    from lstm_exp.jobs.job import run_job

    cfg = lstm_exp.compose(*overrides)
    visits: list[str] = []

    def profile(frame, event, arg):
        if event != "call":
            return
        where = _package_file(frame.f_code.co_filename)
        if where is None:
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        ids = _node_ids(cfg)  # nodes are made lazily: look again at every call
        if any(id(frame.f_locals.get(name)) in ids for name in names):
            visits.append(where)

    with tempfile.TemporaryDirectory(prefix="config_walk_") as tmp:
        cfg.tracking.uri = f"sqlite:///{tmp}/mlflow.db"
        sys.setprofile(profile)
        try:
            run_job(cfg, list(overrides), launch_dir=Path(tmp))
        finally:
            sys.setprofile(None)
    return visits


def measure(visits: list[str]) -> dict[str, int]:
    """files, layer reversals and returns of a walk (see the module docstring)."""
    steps = [v for i, v in enumerate(visits) if i == 0 or v != visits[i - 1]]  # consecutive calls merged
    layer = {v: LAYERS.index(v.split("/")[0]) if "/" in v else len(LAYERS) for v in steps}
    reversals = sum(layer[b] < layer[a] for a, b in zip(steps, steps[1:], strict=False))
    returns = sum(v in steps[:i - 1] for i, v in enumerate(steps) if i > 0)
    return {"files": len(set(steps)), "layer reversals": reversals, "returns": returns}


def main() -> None:
    overrides = sys.argv[1:] or ["model=stacked"]
    visits = walk(overrides)
    steps = [v for i, v in enumerate(visits) if i == 0 or v != visits[i - 1]]
    print("walk:", " -> ".join(steps))
    for name, value in measure(visits).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
