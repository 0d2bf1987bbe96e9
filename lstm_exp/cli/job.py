"""One job, from config to a recorded MLflow run: the order of the steps and what happens on failure.

Nothing is computed before the store answers; a failure ends the run FAILED with its reason, Ctrl-C
ends it KILLED; a run is never left RUNNING.
"""

import contextlib
import json
import logging
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lstm_exp.cli.report import format_report, format_shapes
from lstm_exp.errors import ConfigError

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


def _end_opening_run(record, status: str, reason: str) -> None:
    """Ends the run whose opening was interrupted, once the recorder has said which run it is."""
    if record.pending:
        opened = record.receive()
        if not opened["skipped"]:
            record.request("end", uri=opened["uri"], run_id=opened["run_id"], status=status, reason=reason)


def _end_run(record, run: dict, status: str, reason: str) -> None:
    """Ends a run that did not finish; if the store cannot take that either, the first error stands."""
    from lstm_exp.record.recorder import RecorderError

    try:
        record.request("end", **run, status=status, reason=reason)
    except (RecorderError, ConfigError) as error:
        log.error("could not end run %s as %s: %s", run["run_id"], status, error)


def run_job(cfg: DictConfig, overrides: list[str], parent_run_id: str | None = None) -> JobOutcome:
    """Validates, computes, records and reports one configuration.

    Raises:
        ConfigError: bad configuration or input (after ending any started run FAILED).
        KeyboardInterrupt: after ending the started run KILLED.
    """
    from lstm_exp.compute.runner import execute, prepare

    prepared = prepare(cfg)  # every ConfigError that needs no TensorFlow comes from here
    if cfg.dry_run:
        return JobOutcome(0, "expected shapes (from the config alone):\n"
                          + format_shapes(prepared.expected_shapes))
    if not cfg.tracking.enabled:
        result = execute(cfg, prepared)
        return JobOutcome(0, format_report(cfg, result))

    from lstm_exp.compute.tf_runtime import load_tensorflow, quiet_native_stderr
    from lstm_exp.record import artifacts
    from lstm_exp.record import store as tracking
    from lstm_exp.record.recorder import recorder

    tags = tracking.run_tags(cfg, overrides)
    try:
        tracking.check_reachable(tracking.store_uri(cfg.tracking), cfg.tracking.timeout_s)
        record = recorder()
        record.send("open", tracking=OmegaConf.to_container(cfg.tracking), tags=tags,
                    name=run_name(cfg, overrides), parent=parent_run_id, resume=bool(cfg.resume))
        try:
            with quiet_native_stderr():
                load_tensorflow(cfg.seed)  # meanwhile the recorder opens the store, on the other core
            opened = record.receive()  # nothing is computed before the store has answered
        except KeyboardInterrupt:
            _end_opening_run(record, "KILLED", "interrupted (Ctrl-C)")
            raise
    except ConfigError as error:
        if parent_run_id is None:
            raise
        # The sweep's start reached this store: losing it since is this job's failure, not bad input.
        raise ConnectionError(f"lost the tracking store since the sweep started: {error}") from None
    if opened["skipped"]:
        return JobOutcome(0, f"skipped: this config is already recorded as run {opened['run_id']}",
                          opened["run_id"], skipped=True)
    run = {"uri": opened["uri"], "run_id": opened["run_id"]}
    try:
        with _interrupts_kept():
            result = execute(cfg, prepared)
            report = format_report(cfg, result)
            with tempfile.TemporaryDirectory(prefix="lstm_exp_run_") as tmp:
                folder = artifacts.write_run_directory(Path(tmp), cfg, result, report)
                metrics = artifacts.run_metrics(result, prepared.data.lengths)
                params = tracking.flatten(OmegaConf.to_container(cfg, resolve=True))
                record.request("log", **run, folder=str(folder), metrics=metrics, params=params)
    except KeyboardInterrupt:
        _end_run(record, run, "KILLED", "interrupted (Ctrl-C)")
        raise
    except BaseException as error:
        _end_run(record, run, "FAILED", f"{type(error).__name__}: {error}")
        raise
    report += (
        f"\nMLflow run {run['run_id']} in experiment '{cfg.tracking.experiment}' ({run['uri']})"
        f"\nbrowse it: {tracking.ui_command(run['uri'], opened['experiment_id'], run['run_id'])}"
    )
    return JobOutcome(0, report, run["run_id"])


def failure_outcome(error: BaseException) -> JobOutcome:
    """The outcome of a job that raised: 2 for bad input, 1 for anything else."""
    status = 2 if isinstance(error, ConfigError) else 1
    return JobOutcome(status, error=f"{type(error).__name__}: {error}" if status == 1 else str(error))
