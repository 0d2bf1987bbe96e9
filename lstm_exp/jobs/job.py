"""One job, from the composed config to its outcome: parsed, prepared, then run untracked or recorded.

The recorded path (`recorded_job.py`) is imported only by a tracked job: MLflow's import costs a
single untracked run about a second.
"""

import time
from pathlib import Path

from omegaconf import DictConfig

from lstm_exp.config.analysis import check_input_width
from lstm_exp.config.experiment import estimate_run, parse
from lstm_exp.config.launch_paths import anchor_file_paths
from lstm_exp.config.search_settings import parse_trial
from lstm_exp.config.specs import Experiment
from lstm_exp.config.validate import largest_arrays
from lstm_exp.jobs.outcome import JobOutcome
from lstm_exp.jobs.text import epoch_printer, format_estimate, format_report, format_shapes
from lstm_exp.record.run_store import RunStore


def run_job(cfg: DictConfig, overrides: list[str], store: RunStore | None = None,
            parent_run_id: str | None = None, launch_dir: Path | None = None) -> JobOutcome:
    """Validates, computes, records and reports one configuration.

    Args:
        store: the MLflow store a sweep's jobs share; None starts the recorder process.
        parent_run_id: the sweep's parent run, for a sweep's job.
        launch_dir: where the command was started (`hydra.runtime.cwd`): relative file paths and the
            default store are there, even when Hydra runs the job in its own folder. None: here.

    Raises:
        ConfigError: bad configuration or input, before any run is opened.
        RecordedFailure: the job failed after opening its run (ended FAILED); the error is its cause.
        KeyboardInterrupt, Terminated: after ending the started run KILLED.
    """
    from lstm_exp.compute.runner import prepare

    start = time.perf_counter()
    if launch_dir is not None:
        anchor_file_paths(cfg, launch_dir)  # before parsing: the hash and config.yaml hold them too
    experiment = parse(cfg)  # every ConfigError that needs no file comes from here
    prepared = prepare(experiment)  # and those that need one (inputs, weights) from here
    check_input_width(experiment.analysis, prepared.data.x.shape[-1])
    if experiment.dry_run:
        return JobOutcome(0, "DRY_RUN", _dry_run_report(experiment, prepared))
    if not experiment.tracking.enabled:
        result = _execute_untracked(experiment, prepared)
        report = format_report(experiment, result) + _untracked_fixed_points(experiment, result)
        return JobOutcome(0, "FINISHED", report, seconds=time.perf_counter() - start)
    from lstm_exp.jobs.recorded_job import RecordedJob

    trial = parse_trial(cfg.sweep)  # a search's trial, or None
    job = RecordedJob(cfg, experiment, overrides, parent_run_id, launch_dir, trial)
    return job.run(store or _recorder_store(experiment.tracking.timeout_s), prepared, start)


def _dry_run_report(experiment: Experiment, prepared) -> str:
    """Every array's shape and the memory the run will take, from the config (and task=file's sizes)."""
    shapes, file_bytes = prepared.expected_shapes, None
    if prepared.task_data is not None:
        from lstm_exp.compute.file_task import file_training_bytes

        file_bytes = file_training_bytes(prepared.task_data, experiment.model, experiment.task.batch_size)
    estimate = estimate_run(experiment, shapes, file_bytes)
    return ("expected shapes (from the config alone):\n" + format_shapes(shapes) + "\n\n"
            + format_estimate(estimate, experiment.run.max_memory_gb, largest_arrays(shapes)))


def _execute_untracked(experiment: Experiment, prepared):
    from lstm_exp.compute.runner import execute
    from lstm_exp.record.run_record import signals_kept

    # SIGTERM raises here too, untracked: the run exits 143 and what it started (a native build's
    # compiler) is stopped on the way out, rather than the process dying at the signal.
    with signals_kept():
        return execute(experiment, prepared, on_epoch=epoch_printer(experiment.task))


def _untracked_fixed_points(experiment: Experiment, result) -> str:
    """With `analysis.fixed_points` and tracking off: the fixed points' lines for the report (the files
    written go with their temporary folder: there is no run to keep them)."""
    if not experiment.analysis.fixed_points:
        return ""
    import tempfile

    from lstm_exp.record.dynamics_run import analyse_result

    with tempfile.TemporaryDirectory(prefix="lstm_exp_fixed_points_") as folder:
        return "\n" + analyse_result(experiment.analysis, result, Path(folder))[1]


def _recorder_store(timeout_s: float):
    """A recorder process for this one run; it exits once its input closes at the job's end."""
    import atexit

    from lstm_exp.record.recorder import Recorder, RecorderStore

    recorder = Recorder()
    atexit.register(recorder.close)
    return RecorderStore(recorder, timeout_s)
