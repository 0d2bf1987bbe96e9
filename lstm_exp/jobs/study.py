"""The Optuna study a search runs against: its storage, sampler, pruner, and the trials it still owes.

Storage. By default a journal file, `optuna_journal.log`, beside the tracking store's SQLite database
(in the launch directory for any other tracking store); `hydra.sweeper.storage` may name another journal
file or a database URL (`sqlite:///...`, `postgresql://...`, used through `RDBStorage`). Not the
tracking database itself: MLflow and Optuna both keep their schema revision in Alembic's
`alembic_version` table, so one database file cannot hold both. And not a second SQLite file by
default: every worker process writes to the study, and SQLite's one-writer lock turns concurrent writes
into "database is locked" failures under load, where Optuna's journal appends under a file lock (which
also works on the shared filesystem Slurm jobs see) — what Optuna recommends for several processes.

Resume. The study is loaded by `study_name` + storage, so the same command continues it. Trials that
are RUNNING when a search starts belong to a sweeper that died (one search runs a study at a time):
their parameters are enqueued to be asked again (as a new trial: Optuna cannot reopen or delete one),
then they are marked FAIL with `lstm_exp.stale` and the reason "worker killed; asked again as trial N".
Only COMPLETE and PRUNED trials count toward `n_trials`: a FAIL trial (killed, diverged, a job that
failed) stays in the study as the record of what happened, and the next search asks for another.
"""

import hashlib
from pathlib import Path

import optuna

from lstm_exp.config.search_settings import SearchSettings

JOURNAL = "optuna_journal.log"
STALE = "lstm_exp.stale"  # user attribute of a trial failed because its worker died
RETRY_OF = "lstm_exp.asked_again_from"  # user attribute: the killed trial whose parameters it asks again
RUN_ID = "run_id"  # user attribute: the trial's MLflow run
REASON = "lstm_exp.fail_reason"  # user attribute: why a trial failed
# Completed trials the median pruner waits for: Optuna's own default for MedianPruner. With 2, the
# 24-trial benchmark pruned the trial that became the random search's best (its val_loss ended 1.24x
# worse than random's); with 5 it found that best and still halved the epochs (README, "Measured").
PRUNER_STARTUP = 5
DATABASE_SCHEMES = ("sqlite:", "postgresql", "mysql")


def default_storage(tracking_uri: str, launch_dir: Path) -> str:
    """The journal file beside the tracking store's SQLite file, else in the launch directory."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).parent / JOURNAL)
    return str(launch_dir / JOURNAL)


def default_study_name(experiment: str, space: dict, fixed: list[str]) -> str:
    """A name fixed by the search's space and fixed overrides: the same command finds the same study.

    Hydra's own overrides (`hydra.*`: the launcher, callbacks, n_trials) do not change what a trial
    computes, so they leave the name alone: a study continued with more trials or workers is the same.
    """
    computing = [o for o in fixed if not o.lstrip("+~").startswith("hydra")]
    text = repr(sorted((k, repr(v)) for k, v in space.items())) + repr(sorted(computing))
    return f"{experiment}-search-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def open_storage(storage: str):
    """The Optuna storage named by `storage`: a database URL, or a journal file's path."""
    if storage.startswith(DATABASE_SCHEMES):
        return optuna.storages.RDBStorage(storage, heartbeat_interval=None)
    from optuna.storages.journal import JournalFileBackend

    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(storage))


def _sampler(settings: SearchSettings):
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    if settings.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=settings.seed, warn_independent_sampling=False)
    # Parallel workers: constant_liar makes TPE count running trials as bad, so that workers do not all
    # sample the same promising point.
    return optuna.samplers.TPESampler(seed=settings.seed, constant_liar=settings.n_workers > 1,
                                      n_startup_trials=min(10, max(2, settings.n_trials // 3)))


def make_pruner(name: str):
    """`median` or `none`. Built alike by the sweeper and by each trial's job, whose `should_prune`
    is where the pruner decides; so it depends on nothing but its name."""
    if name == "none":
        return optuna.pruners.NopPruner()
    # From the second epoch on (the first is noisy), once PRUNER_STARTUP trials have completed: a trial
    # whose val_loss at an epoch is worse than the median of the completed trials' at that epoch.
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP, n_warmup_steps=1)


def load_study(settings: SearchSettings, name: str, storage: str) -> optuna.Study:
    """The study (created on first use); in a joblib or Slurm job, the same object from the storage."""
    return optuna.create_study(storage=open_storage(storage), study_name=name, load_if_exists=True,
                               direction=settings.direction, sampler=_sampler(settings),
                               pruner=make_pruner(settings.pruner))


def fail_stale_trials(study: optuna.Study, run_ids: dict[int, str]) -> dict[int, int]:
    """Marks the trials a dead sweeper left RUNNING as FAIL, each asked again as a new trial.

    Args:
        run_ids: trial number -> the run its job had opened (from the parent's children), if any.

    Returns:
        The killed trial's number -> the number of the trial that asks its parameters again.
    """
    states = optuna.trial.TrialState
    asked_again = {}
    for frozen in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
        study.enqueue_trial(frozen.params, user_attrs={RETRY_OF: frozen.number}, skip_if_exists=False)
        again = next(t.number for t in study.get_trials(deepcopy=False, states=(states.WAITING,))
                     if t.user_attrs.get(RETRY_OF) == frozen.number)
        trial = live_trial(study, frozen)  # attributes first: a finished trial takes none
        trial.set_user_attr(STALE, True)
        trial.set_user_attr(REASON, killed_note(again))
        if frozen.number in run_ids:
            trial.set_user_attr(RUN_ID, run_ids[frozen.number])
        study.tell(frozen.number, state=states.FAIL)
        asked_again[frozen.number] = again
    return asked_again


def killed_note(again: int) -> str:
    """The reason a killed trial, and its run, carry."""
    return f"worker killed; asked again as trial {again}"


def live_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> optuna.trial.Trial:
    """A handle on a RUNNING trial that reports to the storage (Optuna's `Trial(study, trial_id)`).

    The storage's trial id has no public getter on a FrozenTrial; `_trial_id` is what Optuna's own
    ask-and-tell code passes to `Trial`.
    """
    return optuna.trial.Trial(study, frozen._trial_id)


def trial_of(study: optuna.Study, number: int) -> optuna.trial.Trial:
    """The RUNNING trial `number` of the study, for a job in another process."""
    return live_trial(study, study.get_trials(deepcopy=False)[number])


COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def trials_done(study: optuna.Study) -> int:
    """Trials counted toward `n_trials`: COMPLETE and PRUNED (a FAIL trial is asked for again)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def trials_waiting(study: optuna.Study) -> int:
    """Trials enqueued and not yet asked (a dead worker's, asked again)."""
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
