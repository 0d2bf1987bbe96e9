"""A `-m` sweep as one MLflow parent run with a child run per job, summed up at the end.

Hydra calls `SweepParentRun` in the launching process (conf/config.yaml registers it), whatever the
launcher; jobs, possibly in other processes, find the parent through a file in the sweep directory.
"""

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)
PARENT_FILE = ".lstm_exp_parent_run"
_exit_status = 0  # of the last sweep in this process; `main` exits with it
_open_parent: list = []  # (client, run_id) while a parent run is open, for `abort_parent`


def parent_run_id(sweep_dir: Path) -> str | None:
    """The parent run of the sweep writing to `sweep_dir`, if tracking made one."""
    path = sweep_dir / PARENT_FILE
    return path.read_text().strip() if path.is_file() else None


def exit_status() -> int:
    """0 when every job of the last sweep succeeded; else 2 if all failures were bad input, else 1."""
    return _exit_status


def abort_parent(status: str = "KILLED", reason: str = "sweep interrupted") -> None:
    """Ends an open parent run and the children still RUNNING under it, so that none is left RUNNING.

    Called on Ctrl-C and when the launcher itself fails (a worker killed for memory): the jobs of those
    children were stopped, or died, before they could end their runs.
    """
    while _open_parent:
        _end_with_children(*_open_parent.pop(), status, reason)


def _end_with_children(client, run_id: str, status: str, reason: str) -> None:
    from lstm_exp.record import store as tracking

    experiment_id = tracking.retry_locked(lambda: client.get_run(run_id)).info.experiment_id
    running = tracking.retry_locked(lambda: client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'"))
    for child in running:
        tracking.end_run(client, child.info.run_id, status, reason)
    tracking.end_run(client, run_id, status, reason)


def _job_outcomes(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/lstm_exp_job.json"))]


class SweepAborted(BaseException):
    """Stops a sweep whose store cannot be prepared (`main` reports `error`).

    A BaseException because Hydra turns a callback's Exception into a warning and then launches every
    job anyway, each failing on the same unreachable store.
    """

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class SweepParentRun(Callback):
    """Opens the parent run before the first job and closes it with a summary after the last."""

    def __init__(self) -> None:
        self.client = None
        self.parent = None

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        global _exit_status
        _exit_status = 0
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if not config.tracking.enabled or config.dry_run:
            return
        from lstm_exp.config.validate import validate_tracking
        from lstm_exp.record import store as tracking

        overrides = list(config.hydra.overrides.task)
        tags = {"lstm_exp.sweep": "parent", "lstm_exp.overrides": " ".join(overrides)}
        name = config.tracking.run_name or "sweep " + " ".join(overrides)
        try:
            validate_tracking(config.tracking)
            # The store and the experiment are prepared once, here, before parallel jobs race for them.
            self.client, experiment_id = tracking.open_experiment(config.tracking)
            self.parent = tracking.start_run(self.client, experiment_id, name, tags)
        except Exception as error:  # noqa: BLE001 - carried past Hydra, which would only warn
            raise SweepAborted(error) from error
        (sweep_dir / PARENT_FILE).write_text(self.parent)
        _open_parent.append((self.client, self.parent))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        global _exit_status
        outcomes = _job_outcomes(Path(config.hydra.sweep.dir))
        failed = [o["exit_status"] for o in outcomes if o["exit_status"]]
        _exit_status = 0 if not failed else 2 if set(failed) == {2} else 1
        if self.parent is None:
            return
        from lstm_exp.record import store as tracking
        from lstm_exp.record import sweep_summary

        status = "FAILED" if failed else "FINISHED"
        try:
            sweep_summary.log_summary(self.client, self.parent, Path(config.hydra.sweep.dir))
        finally:
            _open_parent.clear()
            reason = f"{len(failed)} of {len(outcomes)} jobs failed" if failed else None
            tracking.end_run(self.client, self.parent, status, reason)
