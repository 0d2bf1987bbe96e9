"""`RunStore`: what `RunRecord` asks of a store, the one interface both stores implement.

    LocalStore      MLflow in this process (a sweep's jobs, a sweep's parent run)
    RecorderStore   the same requests carried to a companion process (a single run)

Opening is split in two so that a store in another process can open the run while the job goes on
(importing TensorFlow): `begin_open` starts it and returns a pending handle, `finish_open` waits for
the answer. A store in this process opens in `begin_open` and hands the answer back in `finish_open`.
"""

from typing import Protocol

from lstm_exp.record.metrics import RunMetrics


class RunStore(Protocol):
    """Opens, logs and ends runs; every call names the store `uri` and the run it is about."""

    def begin_open(self, *, uri: str, experiment: str, timeout_s: float, tags: dict[str, str], name: str,
                   parent: str | None, resume: bool) -> object:
        """Starts creating a RUNNING run (or finding the FINISHED twin that `resume` reuses).

        Returns:
            The pending opening, for `finish_open`.
        """
        ...

    def finish_open(self, pending: object) -> dict:
        """Waits for the opening `begin_open` started; may be called again after an interrupted wait.

        Returns:
            {"run_id", "experiment_id", "skipped"}: skipped runs are twins, not new runs.

        Raises:
            ConfigError: the store refused (unreachable, locked, a deleted experiment); no run exists.
        """
        ...

    def log(self, *, uri: str, run_id: str, folder: str, metrics: RunMetrics, params: dict[str, str],
            tags: dict[str, str], state_plots: bool = True) -> None:
        """Logs the run's folder (plots drawn from it), metrics, params and tags; ends it FINISHED.
        `state_plots`: see `artifacts.draw_plots`."""
        ...

    def log_checkpoint(self, *, uri: str, run_id: str, path: str, best: bool) -> str:
        """Uploads a checkpoint file into the running run and marks it the newest (and best, if
        `best`) by tags set once it is whole; returns its artifact path (checkpoint_log.py)."""
        ...

    def log_summary(self, *, uri: str, run_id: str, rows: list[dict], tags: dict[str, str]) -> None:
        """A sweep parent's table of jobs and its tags; the run stays open."""
        ...

    def end(self, *, uri: str, run_id: str, status: str, reason: str | None = None,
            orphans_reason: str | None = None) -> str:
        """Ends the run with `status` if it is still RUNNING (a sweep parent also its orphans).

        Returns:
            The run's status afterwards: `status`, or the one it had already ended with.
        """
        ...
