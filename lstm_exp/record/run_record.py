"""`RunRecord`: the one owner of an MLflow run's life, for single runs, sweep jobs and sweep parents.

    with RunRecord.open(store, request) as record:   # RUNNING
        ...compute...
        record.finish(folder, metrics, params, tags)  # FINISHED
    # an exception inside the block ends the run FAILED with its reason; Ctrl-C or SIGTERM, KILLED

The store is a `RunStore` (run_store.py): a `LocalStore` (MLflow in this process) or a `RecorderStore`
(the companion process).
If the recorder cannot end the run (dead, hung), the run is ended from this process instead.
"""

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lstm_exp.record.metrics import RunMetrics
from lstm_exp.record.run_store import RunStore
from lstm_exp.record.server_access import ServerRefusal

log = logging.getLogger(__name__)


class Terminated(BaseException):
    """SIGTERM arrived (`kill`, Slurm's `scancel`, a time limit): the run ends KILLED."""


@dataclass
class OpenRequest:
    """What opening a run needs: the store, the experiment, the run's tags and name, its parent."""

    uri: str
    experiment: str
    timeout_s: float
    tags: dict[str, str]
    name: str
    parent: str | None = None
    resume: bool = False


@dataclass
class Skipped:
    """`resume=true` found a FINISHED run of the same config and code: nothing to do."""

    run_id: str
    experiment_id: str


class RunRecord:
    """One open run; use it as a context manager so that it always ends."""

    def __init__(self, store: RunStore, uri: str, run_id: str, experiment_id: str, timeout_s: float,
                 orphans_reason: str | None = None) -> None:
        self.store, self.uri, self.run_id, self.experiment_id = store, uri, run_id, experiment_id
        self.timeout_s = timeout_s
        self.status: str | None = None  # set once the run has ended, or LOST (`abandon_store`)
        # A sweep parent's: ending it abnormally also ends its children still RUNNING, with this reason.
        self.orphans_reason = orphans_reason
        self._signals = contextlib.ExitStack()

    @classmethod
    def open(cls, store: RunStore, request: OpenRequest, meanwhile: Callable[[], None] | None = None,
             orphans_reason: str | None = None):
        """Opens a run (or finds its twin when resuming); `meanwhile` runs while the store works.

        `orphans_reason`: for a sweep's parent, why its children still RUNNING are ended with it when
        it ends abnormally (None: a run without children).

        Returns:
            A `RunRecord`, or `Skipped` when `request.resume` found the run already recorded.

        Raises:
            ConfigError: the store refused (unreachable, deleted experiment, ...); no run exists.
        """
        # SIGTERM is ours from the moment the run may exist (a launcher may have set its own handler).
        with signals_kept() as seen:
            pending = store.begin_open(**vars(request))  # a recorder opens while `meanwhile` runs here
            try:
                if meanwhile:
                    meanwhile()
            except BaseException as error:
                cls._end_opened(store, request, store.finish_open(pending), signal_error(seen) or error)
                raise
            try:
                opened = store.finish_open(pending)
            except (KeyboardInterrupt, Terminated) as error:
                # The signal came while the recorder was answering: the run may exist already, and
                # the answer is still coming (the wait can be taken up again); that run ends KILLED.
                cls._end_opened(store, request, store.finish_open(pending), error)
                raise
        if opened["skipped"]:
            return Skipped(opened["run_id"], opened["experiment_id"])
        return cls(store, request.uri, opened["run_id"], opened["experiment_id"], request.timeout_s,
                   orphans_reason)

    @classmethod
    def _end_opened(cls, store: RunStore, request: OpenRequest, opened: dict, error: BaseException) -> None:
        """Ends the run an interrupted or failed opening created (a twin found by resume stays)."""
        if not opened["skipped"]:
            # Shielded: a second signal (a second Ctrl-C; the SIGTERM Slurm sends a job that submitit
            # requeued on its USR2) must not cut the end short and leave the run RUNNING.
            with repeats_ignored(f"ending run {opened['run_id']}"):
                cls(store, request.uri, opened["run_id"], opened["experiment_id"],
                    request.timeout_s)._end_anyway(*_status_of(error))

    def finish(self, folder: str, metrics: RunMetrics, params: dict[str, str], tags: dict[str, str],
               state_plots: bool = True) -> None:
        """Logs the run's folder (plots drawn from it), metrics, params and tags; ends it FINISHED.
        `state_plots`: see `artifacts.draw_plots`."""
        self.store.log(uri=self.uri, run_id=self.run_id, folder=folder, metrics=metrics, params=params,
                       tags=tags, state_plots=state_plots)
        self.status = "FINISHED"

    def log_checkpoint(self, path: str, best: bool) -> str:
        """Uploads a training checkpoint into the open run; its artifact path (checkpoint_log.py)."""
        return self.store.log_checkpoint(uri=self.uri, run_id=self.run_id, path=path, best=best)

    def log_summary(self, rows: list[dict], tags: dict[str, str]) -> None:
        """A sweep parent's table of jobs (an MLflow table) and its tags; the run stays open."""
        self.store.log_summary(uri=self.uri, run_id=self.run_id, rows=rows, tags=tags)

    def end(self, status: str, reason: str | None = None, orphans_reason: str | None = None) -> None:
        """Ends the run with `status` if it is still RUNNING (a sweep parent also ends its children
        still RUNNING); a run another process ended first keeps its status, which `status` takes."""
        self.status = self.store.end(uri=self.uri, run_id=self.run_id, status=status, reason=reason,
                                     orphans_reason=orphans_reason)

    def abandon_store(self) -> None:
        """The store failed a request and is taken as lost: the record sends it nothing more, and
        leaving the `with` block does not try to end the run (a wait on a dead store, and a second
        error about the same loss); the run stays as the store last had it."""
        self.status = "LOST"

    def _end_anyway(self, status: str, reason: str, orphans_reason: str | None = None) -> None:
        """Ends the run; if its store cannot, from this process; the error that ended it stands.

        A server that refuses the user (401, 403) would refuse this process too: the run stays RUNNING
        (`status` None) and the caller names it, with who can end it (`server_access.write_access_lost`).
        """
        try:
            self.end(status, reason, orphans_reason)
            return
        except ServerRefusal as refused:  # the same server would refuse this process too
            log.warning("run %s left RUNNING: the server refused to end it (%s)", self.run_id, refused.code)
            return
        except Exception as error:  # noqa: BLE001 - the first error is the one reported
            first = error
        from lstm_exp.record.local_store import LocalStore

        try:
            also = "" if str(first) in reason else f" (and the store could not end the run: {first})"
            self.status = LocalStore().end(self.uri, self.run_id, status, reason + also, orphans_reason)
        except Exception as error:  # noqa: BLE001
            log.error("could not end run %s as %s: %s; then %s", self.run_id, status, first, error)

    def __enter__(self) -> "RunRecord":
        self._signals.enter_context(signals_kept())
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        stopped = None  # a signal whose own exception was lost, or made into another by a library
        try:
            self._signals.close()
        except (KeyboardInterrupt, Terminated) as late:  # a signal that came while the block finished
            if self.status == "FINISHED":
                raise
            if not isinstance(error, (KeyboardInterrupt, Terminated)):
                stopped = late
        if self.status is None:
            ended_by = stopped or error
            status, reason = (_status_of(ended_by) if ended_by
                              else ("FAILED", "the run ended without its results"))
            with repeats_ignored(f"ending run {self.run_id} {status}"):
                self._end_anyway(status, reason, self.orphans_reason)
        if stopped is not None:
            raise stopped from error
        return False


def _status_of(error: BaseException) -> tuple[str, str]:
    if isinstance(error, KeyboardInterrupt):
        return "KILLED", "interrupted (Ctrl-C)"
    if isinstance(error, Terminated):
        return "KILLED", "terminated (SIGTERM: kill, scancel or a time limit)"
    if isinstance(error, SystemExit):  # in a job: submitit, requeueing it on Slurm's USR2
        return "FAILED", (f"SystemExit({error.code}): the job's process was told to exit (submitit does so "
                          "after requeueing a job at its Slurm time limit or preemption)")
    return "FAILED", f"{type(error).__name__}: {error}"


@contextlib.contextmanager
def signals_kept():
    """SIGTERM raises `Terminated`, Ctrl-C KeyboardInterrupt; a signal whose exception was lost is
    raised when the block ends. Yields the signals seen so far (`signal_error` turns them into that
    exception).

    A KeyboardInterrupt raised inside a finalizer (a garbage-collected weakref callback, as SQLAlchemy
    and TensorFlow leave many) is printed as "Exception ignored" and lost; one raised inside a C
    extension's initialisation comes out as an ImportError (pybind11 wraps it so, importing Keras'
    `optree`). Either way the run would go on, or fail for the wrong reason, as if never stopped.
    """
    # Signals reach the main thread only; a handler other than Python's own is left to its owner.
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    seen: list[int] = []

    def interrupt(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    def terminate(signum, frame):
        seen.append(signum)
        raise Terminated()

    def unraisable(info):  # the dropped interrupt is raised below; its traceback is noise
        if info.exc_type is not KeyboardInterrupt:
            previous_hook(info)

    own_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous_int = signal.signal(signal.SIGINT, interrupt) if own_sigint else None
    previous_term = signal.signal(signal.SIGTERM, terminate)
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield seen
    except BaseException as error:
        if seen and not isinstance(error, (KeyboardInterrupt, Terminated)):
            raise signal_error(seen) from error  # the stop, not what a library made of it, ends the block
        raise
    finally:
        if own_sigint:
            signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        sys.unraisablehook = previous_hook
    if seen:  # reached only when the block ended normally despite the signal
        raise signal_error(seen)


def signal_error(seen: list[int]) -> BaseException | None:
    """The exception the first signal in `seen` raises (KeyboardInterrupt or `Terminated`), or None."""
    if not seen:
        return None
    return KeyboardInterrupt() if seen[0] == signal.SIGINT else Terminated()


@contextlib.contextmanager
def repeats_ignored(what: str):
    """Ctrl-C and SIGTERM are logged and ignored while `what` (a stop already under way) finishes.

    A second signal that cut a stop short would leave what it was stopping as it was: jobs still
    running after their sweep exited, a run left RUNNING. Every stop it shields has a bounded wait.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def again(signum, frame):
        log.warning("%s: %s ignored until that is done", what, signal.Signals(signum).name)

    previous = {number: signal.signal(number, again) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
