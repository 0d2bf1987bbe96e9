"""How a job ended: the value a sweep's launcher carries back to the sweeper, and the failures."""

from dataclasses import dataclass, field

from lstm_exp.errors import ConfigError


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
    # A search trial's: COMPLETE | PRUNED | FAIL, its objective value, why it failed or was pruned,
    # and the epochs it trained (see trial_reporting.py).
    trial_state: str | None = None
    objective: float | None = None
    trial_note: str | None = None
    epochs: int | None = None


class RecordedFailure(Exception):
    """A job's error once its run was opened (the run ended FAILED); `__cause__` is the error itself.

    A sweep's summary row points at the FAILED run by `run_id`; a single run reports the cause.
    """

    def __init__(self, run_id: str) -> None:
        super().__init__(f"the job failed in run {run_id}")
        self.run_id = run_id


def failure_outcome(error: BaseException, seconds: float = 0.0) -> JobOutcome:
    """The outcome of a job that raised: INVALID (exit 2) for bad input, FAILED (exit 1) otherwise."""
    run_id = None
    if isinstance(error, RecordedFailure):
        run_id, error = error.run_id, error.__cause__
    if isinstance(error, ConfigError):
        return JobOutcome(2, "INVALID", run_id=run_id, error=str(error), seconds=seconds)
    return JobOutcome(1, "FAILED", run_id=run_id, error=f"{type(error).__name__}: {error}", seconds=seconds)
