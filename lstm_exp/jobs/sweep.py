"""A `-m` sweep: one MLflow parent run around the jobs, a progress line per job, a summary at the end.

The sweeper (in the launching process, whatever the launcher) owns the parent run; jobs, possibly in
other processes or on other machines, learn its id from the environment the launcher passes on, and
send their outcome back as the job's return value.
"""

import contextlib
import os
import sys
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import DictConfig, OmegaConf

from lstm_exp.config.experiment import parse_tracking
from lstm_exp.config.launcher_validate import validate_launcher
from lstm_exp.jobs.handover import hand_over
from lstm_exp.jobs.outcome import JobOutcome
from lstm_exp.jobs.output_dirs import make_output_dir, unwritable
from lstm_exp.jobs.sweep_conclusions import conclude_sweep, sweep_keys
from lstm_exp.jobs.sweep_grid import job_batches, params_overrides
from lstm_exp.jobs.text import format_sweep_table, job_overrides, sweep_counts
from lstm_exp.record.run_record import signals_kept

PARENT_ENV = "LSTM_EXP_PARENT_RUN"  # the parent run id, for the jobs
SIZE_ENV = "LSTM_EXP_SWEEP_SIZE"  # how many jobs the sweep has, for their progress lines
ORPHAN_REASON = "the job ended without ending its run (its process was killed or lost)"


def run_sweep(sweeper, arguments: list[str]) -> list:
    """The grid's jobs, inside the parent run; hands the sweep's exit status to `main`."""
    config = sweeper.config
    validate_launcher(config.hydra.launcher)  # before the parent run: a refusal leaves nothing behind
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    overrides = parser.parse_overrides([*params_overrides(sweeper.params), *arguments])
    batches = job_batches(overrides, sweeper.max_batch_size)
    total = sum(len(batch) for batch in batches)
    group_keys = sweep_keys(config, [job for batch in batches for job in batch])  # sweep.*, checked here
    sweep_dir = make_output_dir("hydra.sweep.dir", str(config.hydra.sweep.dir))
    try:
        OmegaConf.save(config, sweep_dir / "multirun.yaml")
    except OSError as error:  # a full disk, a read-only filesystem: before the parent run opens
        raise unwritable("hydra.sweep.dir", str(config.hydra.sweep.dir), error) from None

    parent = _open_parent(config, total)
    outcomes: list[JobOutcome] = []
    returns = []
    # Ctrl-C and SIGTERM raise in this process, tracked or not, so that the launch stops its jobs.
    with job_environment({PARENT_ENV: parent.run_id if parent else "", SIZE_ENV: str(total)}), \
            (parent or signals_kept()):
        first = 0
        for batch in batches:
            sweeper.validate_batch_is_legal(batch)
            results = launch_jobs(sweeper.launcher, batch, first)
            outcomes += [job_outcome(result) for result in results]
            returns.append(results)
            first += len(batch)
            if any(o.refused for o in outcomes):  # the server refuses this user: it would refuse the rest
                break
        status = _exit_status(outcomes)
        rows = _rows(returns, outcomes)
        counts = sweep_counts(outcomes) + _not_launched(total - first)
        print(format_sweep_table(rows))
        print(counts)
        if parent:
            status = max(status, conclude_sweep(parent, config, group_keys, rows, counts))
            experiment = parse_tracking(config.tracking).experiment
            status = max(status, _close_parent(parent, rows, outcomes, counts, experiment))

    hand_over(status)
    return returns


def launch_jobs(launcher, batch, first: int, stopping=None) -> list:
    """The launcher's `launch`; for the submitit plugin's own launchers, ours, which stop the jobs if
    the sweep is stopped: interrupted, or, from a search's worker thread, when `stopping` (a
    `threading.Event`) is set. joblib's workers are killed by the search itself.

    Hydra's basic launcher runs the jobs in this process (the interrupt reaches them) and joblib kills
    its workers when its wait is interrupted. The plugin's `submitit_local` and `submitit_slurm` wait
    in a launch that keeps the job handles to itself: stopped, the sweep would leave its jobs running.
    Ours submit the same jobs and, stopped, signal the controllers or cancel the job array; `slurm`
    (our preset) already is ours.
    """
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

    from hydra_plugins.lstm_exp_slurm_launcher.lstm_exp_slurm_launcher import LstmExpSlurmLauncher

    if type(launcher) is LocalLauncher:
        from lstm_exp.jobs import local_launcher

        return local_launcher.launch(launcher, batch, first, stopping)
    if type(launcher) is SlurmLauncher:
        from lstm_exp.jobs import slurm_launcher

        return slurm_launcher.launch(launcher, batch, first, stopping=stopping)
    if isinstance(launcher, LstmExpSlurmLauncher):
        return launcher.launch(batch, first, stopping=stopping)
    return launcher.launch(batch, initial_job_idx=first)


def _not_launched(count: int) -> str:
    return f"; {count} not launched: the server refused the user" if count else ""


def _close_parent(parent, rows: list[dict], outcomes: list[JobOutcome], counts: str, experiment: str) -> int:
    """Logs the summary on the parent and ends it; 1 when the store can no longer take them, 2 when
    the server no longer lets the user write (the runs left RUNNING named, with who can end them)."""
    from lstm_exp.record import store
    from lstm_exp.record.server_access import ServerRefusal, write_access_lost

    failed = sum(o.exit_status != 0 for o in outcomes)
    reason = f"{failed} of {len(outcomes)} jobs failed" if failed else None
    try:
        try:
            parent.log_summary(rows, {"lstm_exp.jobs": counts})
        except ServerRefusal:  # the summary is refused: the parent (and its jobs' runs) may still end
            parent.end("FAILED", reason or "the server refused the sweep's summary", ORPHAN_REASON)
            raise
        parent.end("FAILED" if failed else "FINISHED", reason, orphans_reason=ORPHAN_REASON)
    except ServerRefusal as refused:
        # Ending the parent ends its jobs' runs still RUNNING; if it was refused, all stay RUNNING.
        left = [] if parent.status else [parent.run_id, *(o.run_id for o in outcomes if o.left_running)]
        parent.abandon_store()
        print(f"error: {write_access_lost(refused, parent.uri, experiment, left)}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the store went away: say so in one line, exit 1
        parent.abandon_store()  # nothing more can reach that store from here
        print(f"error: could not record the sweep's summary in its parent run {parent.run_id} "
              f"({' '.join(str(error).split())[:300]}); run it again with resume=true", file=sys.stderr)
        return 1
    print(f"sweep parent run {parent.run_id}: "
          f"{store.ui_command(parent.uri, parent.experiment_id, parent.run_id)}")
    return 0


def _open_parent(config: DictConfig, total: int):
    """The sweep's parent run, or None when nothing is recorded (tracking off, dry run)."""
    tracking = parse_tracking(config.tracking)  # each job checks the rest of its own config
    if not tracking.enabled or config.dry_run:
        return None
    from lstm_exp.record import store
    from lstm_exp.record.local_store import LocalStore
    from lstm_exp.record.run_record import OpenRequest, RunRecord

    overrides = list(config.hydra.overrides.task)
    name = tracking.run_name or "sweep " + " ".join(overrides)
    tags = {"lstm_exp.sweep": "parent", "lstm_exp.overrides": " ".join(overrides),
            "lstm_exp.jobs": f"{total} jobs", "mlflow.source.name": "lstm_exp.run -m"}
    uri = store.default_store_uri(tracking.uri, Path(config.hydra.runtime.cwd))
    request = OpenRequest(uri, tracking.experiment, tracking.timeout_s, tags, name[:250])
    return RunRecord.open(LocalStore(), request, orphans_reason=ORPHAN_REASON)


@contextlib.contextmanager
def job_environment(values: dict[str, str]):
    """Sets environment variables for the launcher's jobs, and restores them after the sweep."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def job_outcome(result: JobReturn) -> JobOutcome:
    """The job's own outcome, or a FAILED one when the launcher lost the job (killed, cancelled)."""
    if result.status == JobStatus.COMPLETED and isinstance(result._return_value, JobOutcome):
        return result._return_value
    error = result._return_value
    reason = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    print(f"error: job {result.hydra_cfg.hydra.job.num if result.hydra_cfg else '?'}: {reason}",
          file=sys.stderr)
    return JobOutcome(1, "FAILED", error=reason)


def _rows(returns: list, outcomes: list[JobOutcome]) -> list[dict]:
    """One summary row per job, in job order."""
    results = [r for batch in returns for r in batch]
    rows = []
    for index, (result, outcome) in enumerate(zip(results, outcomes, strict=True)):
        rows.append({
            "job": index,
            "overrides": " ".join(job_overrides(result.overrides or [])),
            "status": outcome.status,
            "seconds": round(outcome.seconds, 2),
            "run_id": outcome.run_id,
            "output_shape": outcome.output_shape,
            **outcome.metrics,
            "error": outcome.error,
        })
    return rows


def _exit_status(outcomes: list[JobOutcome]) -> int:
    """0 when every job succeeded; else 2 if every failure was bad input, else 1."""
    failed = {o.exit_status for o in outcomes if o.exit_status}
    return 0 if not failed else 2 if failed == {2} else 1
