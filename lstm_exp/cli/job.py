"""One job, from config to a recorded MLflow run: the order of the steps, and its outcome.

Nothing is computed before the store answers; `RunRecord` ends the run FINISHED, FAILED with its
reason, or KILLED, so a run is never left RUNNING.
"""

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lstm_exp.cli.report import format_report, format_shapes, job_overrides
from lstm_exp.config.launch_paths import anchor_file_paths
from lstm_exp.config.store_checks import MAX_RUN_NAME
from lstm_exp.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    """How a job ended; a sweep's launcher carries it back to the sweeper (it pickles)."""

    exit_status: int  # 0 ok, 1 failure, 2 bad config or input
    status: str  # FINISHED, SKIPPED (resume found it), INVALID (bad input), FAILED, KILLED, DRY_RUN
    report: str = ""
    run_id: str | None = None
    experiment_id: str | None = None
    uri: str | None = None
    error: str | None = None
    seconds: float = 0.0
    output_shape: str = ""
    metrics: dict[str, float] = field(default_factory=dict)  # the few a summary table shows


def run_name(cfg: DictConfig, overrides: list[str]) -> str:
    """`tracking.run_name`, else the model's name and the job's own overrides (cut to MLflow's limit)."""
    if cfg.tracking.run_name:
        return cfg.tracking.run_name
    # resume=true must not rename a re-run job: its name stays the one its first run had.
    rest = [o for o in job_overrides(overrides) if not o.startswith("model=")]
    name = " ".join([cfg.model.name, *rest])
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 3] + "..."


def _summary_metrics(metrics: list) -> dict[str, float]:
    return {name: value for name, value, _ in metrics
            if name.endswith(("h_norm", "c_norm"))
            or name in ("reference_max_abs_err", "val_loss", "baseline_loss")}


def run_job(cfg: DictConfig, overrides: list[str], store=None, parent_run_id: str | None = None,
            launch_dir: Path | None = None) -> JobOutcome:
    """Validates, computes, records and reports one configuration.

    Args:
        store: a `LocalStore` shared by a sweep's jobs; None starts the recorder process.
        parent_run_id: the sweep's parent run, for a sweep's job.
        launch_dir: where the command was started (`hydra.runtime.cwd`): relative file paths and the
            default store are there, even when Hydra runs the job in its own folder. None: here.

    Raises:
        ConfigError: bad configuration or input (after ending any started run FAILED).
        KeyboardInterrupt, Terminated: after ending the started run KILLED.
    """
    from lstm_exp.compute.runner import execute, prepare

    start = time.perf_counter()
    if launch_dir is not None:
        anchor_file_paths(cfg, launch_dir)
    prepared = prepare(cfg)  # every ConfigError that needs no TensorFlow comes from here
    if cfg.dry_run:
        return JobOutcome(0, "DRY_RUN", "expected shapes (from the config alone):\n"
                          + format_shapes(prepared.expected_shapes))
    if not cfg.tracking.enabled:
        from lstm_exp.record.run_record import signals_kept

        # SIGTERM raises here too, untracked: the run exits 143 and what it started (a native build's
        # compiler) is stopped on the way out, rather than the process dying at the signal.
        with signals_kept():
            result = execute(cfg, prepared, on_epoch=epoch_printer(cfg))
        return JobOutcome(0, "FINISHED", format_report(cfg, result), seconds=time.perf_counter() - start)

    from lstm_exp.compute.analyses import layer_pca
    from lstm_exp.compute.tf_runtime import load_tensorflow, quiet_native_stderr
    from lstm_exp.record import artifacts
    from lstm_exp.record import store as mlflow_store
    from lstm_exp.record.run_record import OpenRequest, RunRecord, Skipped

    uri = mlflow_store.default_store_uri(cfg.tracking.uri, launch_dir)
    request = OpenRequest(uri, cfg.tracking.experiment, cfg.tracking.timeout_s,
                          mlflow_store.run_tags(cfg, overrides), run_name(cfg, overrides),
                          parent_run_id, bool(cfg.resume))
    try:
        mlflow_store.check_reachable(uri, cfg.tracking.timeout_s)
        if store is None:
            store = _recorder_store(cfg.tracking.timeout_s)

        def load_quietly():
            with quiet_native_stderr():
                load_tensorflow(cfg.seed)

        record = RunRecord.open(store, request, meanwhile=load_quietly)
    except ConfigError as error:
        if parent_run_id is None:
            raise
        # The sweep's start reached this store: losing it since is this job's failure, not bad input.
        raise ConnectionError(f"lost the tracking store since the sweep started: {error}") from None
    if isinstance(record, Skipped):
        return JobOutcome(0, "SKIPPED", f"skipped: this config is already recorded as run {record.run_id}",
                          record.run_id, record.experiment_id, uri, seconds=time.perf_counter() - start)
    try:
        with record:
            result = execute(cfg, prepared, on_epoch=epoch_printer(cfg))
            report = format_report(cfg, result)
            with tempfile.TemporaryDirectory(prefix="lstm_exp_run_") as tmp:
                pca = layer_pca(result.arrays, result.spec, prepared.data.lengths)  # one SVD per layer
                folder = artifacts.write_run_directory(Path(tmp), cfg, result, report, pca)
                metrics = artifacts.run_metrics(result, prepared.data, pca)
                params = mlflow_store.flatten(OmegaConf.to_container(cfg, resolve=True))
                tags = {**mlflow_store.version_tags(), **artifacts.description_tags(cfg, result)}
                record.finish(str(folder), metrics, params, tags)
    except Exception as error:
        error.run_id = record.run_id  # the failed job's summary row points at its FAILED run
        raise
    report += (
        f"\nMLflow run {record.run_id} in experiment '{cfg.tracking.experiment}' ({uri})"
        f"\nbrowse it: {mlflow_store.ui_command(uri, record.experiment_id, record.run_id)}"
    )
    if cfg.tracking.log_model:
        report += f"\nthe stack as a model: mlflow.pyfunc.load_model('runs:/{record.run_id}/model')"
    return JobOutcome(0, "FINISHED", report, record.run_id, record.experiment_id, uri,
                      seconds=time.perf_counter() - start, metrics=_summary_metrics(metrics),
                      output_shape=str(tuple(result.arrays["output"].shape)))


def epoch_printer(cfg: DictConfig):
    """The per-epoch progress line of a training run (`task` other than none), or None."""
    if cfg.task.name == "none":
        return None

    def print_epoch(epoch: int, train_loss: float, val_loss: float, seconds: float) -> None:
        print(f"  epoch {epoch + 1}/{cfg.task.epochs}  train_loss {train_loss:.4g}  val_loss {val_loss:.4g}"
              f"  {seconds:.1f} s", flush=True)

    return print_epoch


def _recorder_store(timeout_s: float):
    """A recorder process for this one run; it exits once its input closes at the job's end."""
    import atexit

    from lstm_exp.record.recorder import Recorder, RecorderStore

    recorder = Recorder()
    atexit.register(recorder.close)
    return RecorderStore(recorder, timeout_s)


def failure_outcome(error: BaseException, seconds: float = 0.0) -> JobOutcome:
    """The outcome of a job that raised: INVALID (exit 2) for bad input, FAILED (exit 1) otherwise."""
    run_id = getattr(error, "run_id", None)
    if isinstance(error, ConfigError):
        return JobOutcome(2, "INVALID", run_id=run_id, error=str(error), seconds=seconds)
    return JobOutcome(1, "FAILED", run_id=run_id, error=f"{type(error).__name__}: {error}", seconds=seconds)
