"""One job, from config to a recorded MLflow run: the order of the steps and what happens on failure.

Nothing is computed before the store answers; a failure ends the run FAILED with its reason, Ctrl-C
ends it KILLED; a run is never left RUNNING.
"""

import contextlib
import json
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from lstm_exp.errors import ConfigError
from lstm_exp.report import format_report, format_shapes

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    """How a job ended: exit status (0 ok, 1 failure, 2 bad config/input), its report and run."""

    exit_status: int
    report: str = ""
    run_id: str | None = None
    error: str | None = None
    skipped: bool = False

    def save(self, folder: Path) -> None:
        """Leaves the outcome in the job's output folder, where the sweep's end reads it."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "lstm_exp_job.json").write_text(json.dumps(self.__dict__))


def run_name(cfg: DictConfig, overrides: list[str]) -> str:
    """`tracking.run_name`, else the model's name and the job's own overrides."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    # resume=true must not rename a re-run job: its name stays the one its first run had.
    rest = [o for o in overrides if not o.startswith(("model=", "tracking", "hydra", "resume="))]
    return " ".join([cfg.model.name, *rest])


def _finished_twin(client, experiment_id: str, tags: dict[str, str]) -> str | None:
    """A FINISHED run computed from the same config by the same code, if the store has one."""
    query = " and ".join(
        f"tags.`{k}` = '{tags[k]}'" for k in ("lstm_exp.config_hash", "lstm_exp.code_version")
    )
    from lstm_exp.tracking import retry_locked

    found = retry_locked(lambda: client.search_runs(
        [experiment_id], query + " and attributes.status = 'FINISHED'", max_results=1))
    return found[0].info.run_id if found else None


@contextlib.contextmanager
def _interrupts_kept():
    """Raises KeyboardInterrupt after the block if Ctrl-C came but Python dropped it.

    A KeyboardInterrupt raised inside a finalizer (a garbage-collected weakref callback, as SQLAlchemy
    and TensorFlow leave many) is printed as "Exception ignored" and lost; the run would go on.
    """
    # Signals reach the main thread only; a handler other than Python's own is left to its owner.
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    seen = []

    def interrupt(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    def unraisable(info):  # the dropped interrupt is raised below; its traceback is noise
        if info.exc_type is not KeyboardInterrupt:
            previous_hook(info)

    previous, previous_hook = signal.signal(signal.SIGINT, interrupt), sys.unraisablehook
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = previous_hook
    if seen:  # reached only when the block ended normally despite the interrupt
        raise KeyboardInterrupt


def run_job(cfg: DictConfig, overrides: list[str], parent_run_id: str | None = None) -> JobOutcome:
    """Validates, computes, records and reports one configuration.

    Raises:
        ConfigError: bad configuration or input (after ending any started run FAILED).
        KeyboardInterrupt: after ending the started run KILLED.
    """
    from lstm_exp.runner import execute, prepare

    prepared = prepare(cfg)  # every ConfigError that needs no TensorFlow comes from here
    if cfg.dry_run:
        return JobOutcome(0, "expected shapes (from the config alone):\n"
                          + format_shapes(prepared.expected_shapes))
    if not cfg.tracking.enabled:
        result = execute(cfg, prepared)
        return JobOutcome(0, format_report(cfg, result))

    from lstm_exp import tracking

    try:
        client, experiment_id = tracking.open_experiment(cfg.tracking)
    except ConfigError as error:
        if parent_run_id is None:
            raise
        # The sweep's start reached this store: losing it since is this job's failure, not bad input.
        raise ConnectionError(f"lost the tracking store since the sweep started: {error}") from None
    tags = tracking.run_tags(cfg, overrides)
    if cfg.resume and (twin := _finished_twin(client, experiment_id, tags)):
        return JobOutcome(0, f"skipped: this config is already recorded as run {twin}",
                          twin, skipped=True)
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run_id = tracking.start_run(client, experiment_id, run_name(cfg, overrides), tags)
    try:
        with _interrupts_kept():
            result = execute(cfg, prepared)
            report = format_report(cfg, result)
            tracking.log_result(client, run_id, cfg, result, report, prepared.data.lengths)
    except KeyboardInterrupt:
        tracking.end_run(client, run_id, "KILLED", "interrupted (Ctrl-C)")
        raise
    except BaseException as error:
        tracking.end_run(client, run_id, "FAILED", f"{type(error).__name__}: {error}")
        raise
    tracking.end_run(client, run_id, "FINISHED")
    uri = tracking.store_uri(cfg.tracking)
    report += (
        f"\nMLflow run {run_id} in experiment '{cfg.tracking.experiment}' ({uri})"
        f"\nbrowse it: {tracking.ui_command(uri)}"
    )
    return JobOutcome(0, report, run_id)


def failure_outcome(error: BaseException) -> JobOutcome:
    """The outcome of a job that raised: 2 for bad input, 1 for anything else."""
    status = 2 if isinstance(error, ConfigError) else 1
    return JobOutcome(status, error=f"{type(error).__name__}: {error}" if status == 1 else str(error))
