"""`-m hydra/sweeper=search`: workers that pull trials from one Optuna study, inside one parent run.

No batches. `n_workers` workers each loop ask -> launch ONE job through the configured launcher -> tell,
so a worker whose trial ends (or is pruned) asks for the next at once and no worker waits for another.
One worker runs in this (main) thread: Hydra's basic launcher runs the job in-process, and a job's
signal handling and Hydra's job context belong to the main thread. Several workers are threads that
each wait on their own launch, so the jobs must run elsewhere: joblib, submitit_local or slurm; the
basic launcher with n_workers > 1 is refused. The study lives in shared storage (`study.py`), which the
jobs open themselves to report each epoch and to learn whether they are pruned (`trial_reporting.py`).

Stopped (Ctrl-C, SIGTERM): no worker asks again; trials still RUNNING are told FAIL; the parent ends
KILLED and, with it, its children still RUNNING. joblib's workers are killed (their runs end KILLED
through the parent); in-process, the job ends its own run KILLED. The signal reaches the main thread
only: with several workers it sets their `stop` event, which the submitit_local and Slurm launches poll
(jobs/launch_stop.py) to stop or cancel their jobs, and waits (at most `WORKERS_STOP_TIMEOUT_S`) for the
workers to have done so before the parent ends.
"""

import sys
import threading
import time
from pathlib import Path

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from lstm_exp.config.experiment import parse_tracking
from lstm_exp.config.launcher_validate import validate_launcher
from lstm_exp.config.search_settings import SearchSettings, check_sampler_fits, parse_settings
from lstm_exp.config.search_space import parse_search, trial_override
from lstm_exp.errors import ConfigError
from lstm_exp.jobs import study as studies
from lstm_exp.jobs.handover import hand_over
from lstm_exp.jobs.launch_stop import LaunchStopped
from lstm_exp.jobs.output_dirs import make_output_dir
from lstm_exp.jobs.search_parent import SearchParent
from lstm_exp.jobs.sweep import PARENT_ENV, SIZE_ENV, job_environment, job_outcome, launch_jobs
from lstm_exp.jobs.sweep_grid import params_overrides
from lstm_exp.jobs.text import trial_line
from lstm_exp.record.run_record import repeats_ignored

# Bounds the launches' own bounded stops: submitit_local's SIGTERM grace, cancel and kill (30 + 30 + 30 s),
# Slurm's scancel and its wait until squeue lists none of the jobs (180 s), with their commands' timeouts.
WORKERS_STOP_TIMEOUT_S = 300


def run_search(sweeper, arguments: list[str]) -> list:
    """The study's remaining trials, on `n_workers` workers; hands the search's exit status to `main`."""
    config = sweeper.config
    validate_launcher(config.hydra.launcher)
    parser = OverridesParser.create(config_loader=sweeper.hydra_context.config_loader)
    space, fixed = parse_search(parser, [*params_overrides(sweeper.params), *arguments], config)
    trains = config.task.name != "none" or "task" in space
    settings = parse_settings(config.hydra.sweeper, config.sweep, trains)
    if not space:
        raise ConfigError("hydra.sweeper.params", None, "a search space: at least one key with choice(...), "
                          "a,b, range(...) or interval(...), on the command line or in hydra.sweeper.params")
    check_sampler_fits(settings.sampler, space)
    in_process = "BasicLauncher" in str(config.hydra.launcher.get("_target_", ""))
    if settings.n_workers > 1 and in_process:
        raise ConfigError("hydra.sweeper.n_workers", settings.n_workers, "1 with the basic launcher (its "
                          "jobs run in this process, one at a time); for parallel workers choose "
                          "hydra/launcher=joblib, submitit_local or slurm")
    tracking = parse_tracking(config.tracking)
    if not tracking.enabled or config.dry_run:
        key, value = ("dry_run", True) if tracking.enabled else ("tracking.enabled", False)
        raise ConfigError(key, value, "a tracked run (a search records its trials)")
    launch_dir = Path(config.hydra.runtime.cwd)
    from lstm_exp.record import store

    uri = store.default_store_uri(tracking.uri, launch_dir)
    storage = settings.storage or studies.default_storage(uri, launch_dir)
    if not storage.startswith(studies.DATABASE_SCHEMES):
        storage = str(launch_dir / storage)  # a journal file: absolute for jobs in other folders
    name = settings.study_name or studies.default_study_name(tracking.experiment, space, fixed)
    sweep_dir = make_output_dir("hydra.sweep.dir", str(config.hydra.sweep.dir))
    OmegaConf.save(config, sweep_dir / "multirun.yaml")

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our line per trial says it once
    study = studies.load_study(settings, name, storage)
    parent = SearchParent.open(uri, tracking, name, storage, list(config.hydra.overrides.task))
    with job_environment({PARENT_ENV: parent.record.run_id, SIZE_ENV: str(settings.n_trials)}), parent.record:
        stale_runs = parent.stale_runs()
        asked_again = studies.fail_stale_trials(study, {n: ids[0] for n, ids in stale_runs.items()
                                                        if n is not None})
        parent.end_stale(stale_runs, asked_again)
        to_run = max(0, settings.n_trials - studies.trials_done(study))
        print(f"search: study '{name}' in {storage}: {studies.trials_done(study)} of {settings.n_trials} "
              f"trials counted, {to_run} to run on {settings.n_workers} worker(s)"
              + "".join(f"; trial {k} (its worker was killed) asked again as trial {a}"
                        for k, a in asked_again.items()), flush=True)
        workers = _Workers(sweeper, study, space, fixed, name, storage, settings, to_run)
        try:
            workers.run()
        finally:
            workers.fail_running(study)
        status = parent.conclude(study, settings, workers.outcomes)
    hand_over(status)
    return []


class _Workers:
    """The workers' shared state: how many trials are left to start, and what each finished trial gave."""

    def __init__(self, sweeper, study: optuna.Study, space: dict, fixed: list[str], name: str, storage: str,
                 settings: SearchSettings, to_run: int) -> None:
        self.sweeper, self.study, self.space, self.fixed = sweeper, study, space, fixed
        self.name, self.storage, self.settings = name, storage, settings
        self.left = to_run
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.outcomes: dict[int, object] = {}  # trial number -> JobOutcome
        self.running: set[int] = set()

    def run(self) -> None:
        if self.settings.n_workers == 1:
            self.work()
            return
        threads = [threading.Thread(target=self.work, name=f"search-worker-{i}", daemon=True)
                   for i in range(self.settings.n_workers)]
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(timeout=0.2)  # short: Ctrl-C and SIGTERM reach this (main) thread
        except BaseException:
            self.stop.set()  # the workers' launches stop their jobs
            with repeats_ignored("stopping the search's workers and their jobs"):
                if "joblib" in type(self.sweeper.launcher).__module__:
                    _stop_joblib_workers()
                _join(threads, WORKERS_STOP_TIMEOUT_S)
            raise

    def work(self) -> None:
        """One worker: ask -> launch one job -> tell, until the study has its trials."""
        while not self.stop.is_set():
            with self.lock:
                if self.left <= 0:
                    return
                self.left -= 1
                trial = self.study.ask(self.space)
                self.running.add(trial.number)
            overrides = [*self.fixed, *(trial_override(k, v) for k, v in trial.params.items()),
                         f"sweep.trial={trial.number}", f"sweep.study='{self.name}'",
                         f"sweep.storage='{self.storage}'", f"sweep.pruner={self.settings.pruner}"]
            start = time.perf_counter()
            try:
                result = launch_jobs(self.sweeper.launcher, [overrides], trial.number, self.stop)[0]
                outcome = job_outcome(result)
            except LaunchStopped:  # its job is stopped; the main thread fails the trial and ends its run
                return
            except Exception as error:  # noqa: BLE001 - a launcher that lost the job: this trial fails
                from lstm_exp.jobs.outcome import failure_outcome

                outcome = failure_outcome(error, time.perf_counter() - start)
            self._tell(trial, outcome)

    def _tell(self, trial: optuna.trial.Trial, outcome) -> None:
        state = outcome.trial_state or "FAIL"
        note = outcome.trial_note or (outcome.error if state == "FAIL" else None)
        if outcome.run_id:
            trial.set_user_attr(studies.RUN_ID, outcome.run_id)
        if note:
            trial.set_user_attr(studies.REASON, note)
        states = optuna.trial.TrialState
        outcome.trial_state, outcome.trial_note = state, note
        with self.lock:  # told, counted and printed at once: the lines' counts go up one by one
            if state == "COMPLETE":
                self.study.tell(trial, outcome.objective, skip_if_finished=True)
            else:
                self.study.tell(trial, state=states.PRUNED if state == "PRUNED" else states.FAIL,
                                skip_if_finished=True)
            self.running.discard(trial.number)
            self.outcomes[trial.number] = (trial.params, outcome)
            settings = self.settings
            counted = studies.trials_done(self.study)
            line = trial_line(trial.number, counted, settings.n_trials, trial.params, outcome,
                              settings.metric)
            print(line, flush=True)

    def fail_running(self, study: optuna.Study) -> None:
        """Trials still RUNNING when the workers stopped (a stop, a lost launcher): told FAIL."""
        for number in sorted(self.running):
            frozen = study.get_trials(deepcopy=False)[number]
            if frozen.state == optuna.trial.TrialState.RUNNING:
                studies.live_trial(study, frozen).set_user_attr(studies.REASON, "the search was stopped")
                study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _join(threads: list[threading.Thread], timeout_s: float) -> None:
    """Waits until every thread has ended, at most `timeout_s` in all; says which did not."""
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    alive = [thread.name for thread in threads if thread.is_alive()]
    if alive:
        print(f"search: {', '.join(alive)} still stopping its job after {timeout_s} s; the search ends "
              "without waiting longer", file=sys.stderr)


def _stop_joblib_workers() -> None:
    """Kills joblib's worker processes (a job in one would go on after the search stopped)."""
    try:
        from joblib.externals.loky import get_reusable_executor

        # reuse=True: the executor joblib's Parallel made. Called with other arguments (the default), loky
        # replaces it, first shutting it down without killing its workers: it waited for the jobs.
        get_reusable_executor(reuse=True, kill_workers=True).shutdown(wait=True, kill_workers=True)
    except Exception as error:  # noqa: BLE001 - not started, or already gone: nothing to stop
        print(f"search: joblib workers not stopped ({error})", file=sys.stderr)
