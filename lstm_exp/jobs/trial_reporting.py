"""A search trial inside its job: the per-epoch objective reported to the study, pruning, the verdict.

The job learns its trial from `sweep.trial` / `sweep.study` / `sweep.storage` (the sweeper's overrides,
outside the config hash) and opens the study from the storage, which works from any process: in-process,
a joblib worker or a Slurm job. After each epoch `on_epoch` reports the objective's value at that epoch
to the trial; when the pruner says so it returns True and training stops at once, so the run ends
FINISHED, with the epochs it ran and the tag `lstm_exp.trial_state=PRUNED`. A non-finite value stops
training too: the trial is FAIL (diverged), not pruned — Optuna's median pruner would prune a NaN.
The sweeper, not the job, tells the study how the trial ended (`JobOutcome.trial_state`).
"""

import math

from lstm_exp.config.search_settings import TrialSpec

COMPLETE, PRUNED, FAIL = "COMPLETE", "PRUNED", "FAIL"


class TrialReporter:
    """Reports a training's epochs to its trial and decides the trial's state.

    Args:
        spec: the trial (number, study, storage, objective metric).
        printer: the job's own per-epoch progress line, called first (None: none).
    """

    def __init__(self, spec: TrialSpec, printer=None) -> None:
        import optuna

        from lstm_exp.jobs.study import make_pruner, open_storage, trial_of

        self.spec, self.printer = spec, printer
        study = optuna.load_study(study_name=spec.study, storage=open_storage(spec.storage),
                                  pruner=make_pruner(spec.pruner))
        self.trial = trial_of(study, spec.number)
        self.epochs = 0
        self.pruned = False
        self.diverged: str | None = None

    def on_epoch(self, epoch: int, train_loss: float, val_loss: float, seconds: float) -> bool:
        """`training.train`'s callback: True stops training (pruned, or diverged)."""
        if self.printer is not None:
            self.printer(epoch, train_loss, val_loss, seconds)
        self.epochs = epoch + 1
        # val_loss_ratio's baseline is a constant: val_loss prunes alike.
        on_train = self.spec.metric == "train_loss"
        name, value = ("train_loss", train_loss) if on_train else ("val_loss", val_loss)
        if not math.isfinite(value):
            self.diverged = f"diverged: {name} {value} at epoch {epoch + 1}"
            return True
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            self.pruned = True
            return True
        return False

    def verdict(self, losses: dict[str, float]) -> tuple[str, float | None, str | None]:
        """(state, objective value, reason) from the run's final losses (val_loss, baseline_loss, ...)."""
        if self.diverged:
            return FAIL, None, self.diverged
        if self.spec.metric == "val_loss_ratio":
            value = losses["val_loss"] / losses["baseline_loss"]
        else:
            value = losses[self.spec.metric]
        if not math.isfinite(value):
            return FAIL, None, f"diverged: {self.spec.metric} {value}"
        if self.pruned:
            return PRUNED, value, f"pruned at epoch {self.epochs}"
        return COMPLETE, value, None
