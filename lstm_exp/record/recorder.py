"""The recorder: a companion process that runs `LocalStore` for a single run, so that importing MLflow,
opening the store and drawing the plots happen on the second core while the job imports TensorFlow.

Only transport lives here: the job sends `{"id", "method", "args"}` lines, the recorder answers each
with the same id. The job reads only the reply to the request it is waiting for (a stale reply, left
by an interrupted wait, is dropped by its id), and never waits longer than its timeout. A recorder
that dies or hangs raises `RecorderError`; `RunRecord` then ends the run from the job's own process.
Should the job's process vanish, the recorder ends the runs it opened FAILED: none is left RUNNING.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

from lstm_exp.errors import ConfigError
from lstm_exp.record.run_store import RunStore
from lstm_exp.record.server_access import ServerRefusal

OPEN_GRACE_S = 120  # an open's bound beyond tracking.timeout_s (MLflow's import, a first migration)


class RecorderError(RuntimeError):
    """The recorder died, hung, or failed a request for a reason other than bad input."""


class Recorder:
    """The job's side: the same methods as `LocalStore`, carried to the companion process."""

    def __init__(self) -> None:
        self._next_id = 0
        self._buffer = b""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lstm_exp.record.recorder"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            # Its own session: a terminal's Ctrl-C reaches the job alone, which decides the run's end.
            start_new_session=True,
        )

    def send(self, method: str, **args) -> int:
        """Sends one request; returns its id, for `wait`."""
        self._next_id += 1
        line = json.dumps({"id": self._next_id, "method": method, "args": args}, default=str) + "\n"
        try:
            self.process.stdin.write(line.encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise RecorderError(f"the recorder process is gone ({self._exit()}): {error}") from None
        return self._next_id

    def wait(self, request_id: int, method: str, timeout_s: float):
        """The reply to request `request_id`; replies to earlier requests are dropped.

        Raises:
            ConfigError: the store refused the request as bad input (e.g. a deleted experiment);
                `ServerRefusal`, a server's 401 or 403.
            RecorderError: the recorder failed the request, ended, or gave no reply within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            line = self._read_line(deadline, method, timeout_s)
            reply = json.loads(line)
            if reply.get("id") != request_id:
                continue  # the answer to a request whose wait was interrupted
            if "refused" in reply:  # a server's 401 or 403: the run's later requests are refused too
                raise ServerRefusal(*reply["refused"])
            if "config_error" in reply:
                raise ConfigError(*reply["config_error"])
            if "error" in reply:
                raise RecorderError(f"the recorder failed '{method}': {reply['error']}")
            return reply["result"]

    def _read_line(self, deadline: float, method: str, timeout_s: float) -> bytes:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.kill()
                raise RecorderError(
                    f"the recorder gave no answer to '{method}' within {timeout_s:g} s (hung or stopped)")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RecorderError(f"the recorder process ended during '{method}' ({self._exit()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _exit(self) -> str:
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def kill(self) -> None:
        """Ends a recorder that can no longer be trusted (it gave no answer in time)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def close(self) -> None:
        """Lets the recorder go once every request is answered; it exits on the end of its input.

        Not waiting for it spares the job the recorder's interpreter shutdown (~1 s of MLflow teardown).
        """
        if self.process.poll() is None:
            self.process.stdin.close()


class RecorderStore(RunStore):
    """The `RunStore` interface over a `Recorder` (`LocalStore` answers), each call bounded by a timeout."""

    def __init__(self, recorder: Recorder, timeout_s: float) -> None:
        self.recorder, self.timeout_s = recorder, timeout_s

    def begin_open(self, **args) -> int:
        """Starts opening a run; `finish_open` waits for it (meanwhile the job loads TensorFlow)."""
        return self.recorder.send("open", **args)

    def finish_open(self, request_id: int) -> dict:
        # Opening includes importing MLflow and migrating a fresh database, on a possibly busy machine.
        return self.recorder.wait(request_id, "open", OPEN_GRACE_S + self.timeout_s)

    def log(self, metrics, **args) -> None:
        # Drawing and uploading take longer than a store round trip: a wider, still finite bound.
        request = self.recorder.send("log", metrics=metrics.to_json(), **args)
        self.recorder.wait(request, "log", 10 * self.timeout_s)

    def log_checkpoint(self, **args) -> str:
        # An upload of the file: bounded like `log`.
        request = self.recorder.send("log_checkpoint", **args)
        return self.recorder.wait(request, "log_checkpoint", 10 * self.timeout_s)

    def log_summary(self, **args) -> None:
        self.recorder.wait(self.recorder.send("log_summary", **args), "log_summary", self.timeout_s)

    def end(self, **args) -> str:
        return self.recorder.wait(self.recorder.send("end", **args), "end", self.timeout_s)


def _serve() -> None:
    from lstm_exp.record.local_store import LocalStore
    from lstm_exp.record.metrics import RunMetrics

    store = LocalStore()
    open_runs: dict[str, str] = {}  # run id -> store URI, until the run has ended
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the job, which tells us the outcome
    # Replies get a private copy of stdout; whatever a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        message = json.loads(line)
        method, args = message["method"], message["args"]
        if method == "log":  # the one request whose payload is not plain JSON
            args["metrics"] = RunMetrics.from_json(args["metrics"])
        try:
            result = getattr(store, method)(**args)
            reply = {"id": message["id"], "result": result}
        except ServerRefusal as error:
            reply = {"id": message["id"], "refused": [error.key, error.received, error.allowed, error.code]}
        except ConfigError as error:
            reply = {"id": message["id"], "config_error": [error.key, error.received, error.allowed]}
        except Exception as error:  # noqa: BLE001 - answered, so that the job can end its run
            reply = {"id": message["id"], "error": f"{type(error).__name__}: {error}"}
        if method == "open" and "result" in reply and not reply["result"]["skipped"]:
            open_runs[reply["result"]["run_id"]] = args["uri"]
        elif method in ("log", "end"):
            open_runs.pop(args["run_id"], None)
        channel.write(json.dumps(reply, default=str) + "\n")
        if method == "open":
            import lstm_exp.record.plots  # noqa: F401  (matplotlib loads while the job computes)
    for run_id, uri in open_runs.items():  # the job's process went away mid-run
        store.end(uri, run_id, "FAILED", "the lstm_exp process ended during the run")


if __name__ == "__main__":
    _serve()
