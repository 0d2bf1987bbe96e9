"""How a job ended: the value a sweep's launcher carries back to the sweeper, and the failures."""

from dataclasses import dataclass, field

from lstm_exp.errors import ConfigError
from lstm_exp.record.server_access import ServerRefusal


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
    refused: bool = False  # the server refused the user (401, 403): later jobs would be refused too
    left_running: bool = False  # the server refused to end the job's run too: it stays RUNNING
    # A search trial's: COMPLETE | PRUNED | FAIL, its objective value, why it failed or was pruned,
    # and the epochs it trained (see trial_reporting.py).
    trial_state: str | None = None
    objective: float | None = None
    trial_note: str | None = None
    epochs: int | None = None


class RecordedFailure(Exception):
    """A job's error once its run was opened (the run ended FAILED); `__cause__` is the error itself.

    A sweep's summary row points at the FAILED run by `run_id`; a single run reports the cause.
    `left_running`: the store refused to end the run (a server that no longer lets the user write).
    """

    def __init__(self, run_id: str, left_running: bool = False) -> None:
        super().__init__(f"the job failed in run {run_id}")
        self.run_id, self.left_running = run_id, left_running


def failure_outcome(error: BaseException, seconds: float = 0.0) -> JobOutcome:
    """The outcome of a job that raised: INVALID (exit 2) for bad input, FAILED (exit 1) otherwise."""
    run_id, left_running = None, False
    if isinstance(error, RecordedFailure):
        run_id, left_running, error = error.run_id, error.left_running, error.__cause__
    if isinstance(error, ServerRefusal):  # not bad input: the server's answer to this user, as one line
        return JobOutcome(2, "FAILED", run_id=run_id, error=str(error), seconds=seconds, refused=True,
                          left_running=left_running)
    if isinstance(error, ConfigError):
        return JobOutcome(2, "INVALID", run_id=run_id, error=str(error), seconds=seconds)
    return JobOutcome(1, "FAILED", run_id=run_id, error=f"{type(error).__name__}: {error}", seconds=seconds)
