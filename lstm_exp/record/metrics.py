"""A run's metrics as one value, grouped by what their steps count, from the job to MLflow and the plots.

    RunMetrics.final        step 0: reference_max_abs_err, timings, analyses, baseline_loss
    RunMetrics.final_norms  layer_{k}.h_norm, layer_{k}.c_norm: the final states, on the last time step
    RunMetrics.per_step     layer_{k}.h_norm at step t (the series ends on the final value)
    RunMetrics.per_epoch    train_loss, val_loss (and learning_rate, when scheduled) at step epoch

`rows()` is what MLflow receives. The value pickles (a sweep's launchers) and travels to the recorder
process as JSON (`to_json` / `from_json`).
"""

from dataclasses import asdict, dataclass, field

from lstm_exp.config import names


@dataclass(frozen=True)
class RunMetrics:
    """Every metric of one run (see the module docstring)."""

    final: dict[str, float] = field(default_factory=dict)
    final_norms: dict[str, float] = field(default_factory=dict)
    per_step: dict[str, tuple[float, ...]] = field(default_factory=dict)
    per_epoch: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        """The last time step of the per-step series (0 without any)."""
        return max((len(series) for series in self.per_step.values()), default=1) - 1

    def rows(self) -> list[tuple[str, float, int]]:
        """(name, value, step) of every metric, as MLflow logs them.

        A final norm with a per-step series is that series' last value, so it is not logged twice.
        """
        rows = [(n, v, t) for n, series in self.per_step.items() for t, v in enumerate(series)]
        rows += [(n, v, epoch) for n, series in self.per_epoch.items() for epoch, v in enumerate(series)]
        rows += [(n, v, self.last_step) for n, v in self.final_norms.items() if n not in self.per_step]
        rows += [(n, v, 0) for n, v in self.final.items()]
        return rows

    def latest(self) -> dict[str, float]:
        """Each metric's latest value (a series' last), as MLflow's run page shows it."""
        return {name: value for name, value, _ in self.rows()}

    def summary(self) -> dict[str, float]:
        """The few a sweep's table shows: the final norms, the reference check, the losses."""
        shown = {*self.final_norms, names.REFERENCE_ERR, names.VAL_LOSS, names.BASELINE_LOSS}
        return {name: value for name, value in self.latest().items() if name in shown}

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunMetrics":
        return cls(dict(data["final"]), dict(data["final_norms"]),
                   {n: tuple(s) for n, s in data["per_step"].items()},
                   {n: tuple(s) for n, s in data["per_epoch"].items()})


def run_metrics(result, data, pca) -> RunMetrics:
    """Every metric of a run: state norms, the reference check, timings, analyses, losses per epoch.

    Args:
        result: the runner's `Result`.
        data: the run's `InputData` (its lengths and initial state shape the analyses).
        pca: `analyses.layer_pca` of the run (also what `write_run_directory` draws from).
    """
    from lstm_exp.compute.analyses import state_analyses, state_norms

    lengths = data.lengths
    final_norms, per_step = state_norms(result.arrays, len(result.spec.units), lengths)
    final = {names.REFERENCE_ERR: result.reference_max_abs_err}
    final.update({names.timing_metric(n): v for n, v in result.timings.items()})
    final.update(state_analyses(result.arrays, result.spec, lengths, data.initial_state, pca))
    per_epoch = {}
    if result.training:
        training = result.training
        per_epoch = {names.TRAIN_LOSS: tuple(float(v) for v in training.train_loss),
                     names.VAL_LOSS: tuple(float(v) for v in training.val_loss)}
        final[names.BASELINE_LOSS] = training.baseline_loss
        if training.learning_rates:
            per_epoch[names.LEARNING_RATE] = tuple(float(v) for v in training.learning_rates)
        if training.best_epoch is not None:  # early stopping was on: the last epoch trained, stopped or not
            final[names.STOPPED_EPOCH] = len(training.val_loss) - 1
            final[names.BEST_EPOCH] = training.best_epoch
    return RunMetrics({n: float(v) for n, v in final.items()}, final_norms,
                      {n: tuple(s) for n, s in per_step.items()}, per_epoch)
