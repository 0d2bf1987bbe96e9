"""The recorder: a companion process that owns MLflow for the jobs of one lstm_exp process.

Why a process: importing MLflow and opening its store (~1.5 s) and drawing the plots cost as much as
TensorFlow's import. In a companion process they run on the second core while the job imports
TensorFlow and computes, so a single run starts almost as fast as a plain Keras script.

The job talks to it in JSON lines over a pipe (`Recorder.send` / `receive`); every request is
answered. The recorder ignores Ctrl-C (the job decides how a run ends) and, should the job's process
vanish, ends every run it still holds FAILED: no run is left RUNNING.

    open  {tracking, tags, name, parent, resume} -> {run_id, skipped, uri, experiment_id}
    log   {uri, run_id, folder, metrics, params} -> {}     (draws plots/, logs, ends the run FINISHED)
    end   {uri, run_id, status, reason}          -> {}
"""

import atexit
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from lstm_exp.errors import ConfigError

REPLY_TIMEOUT_S = 600  # a reply slower than this means the recorder is stuck


class RecorderError(RuntimeError):
    """The recorder failed a request for a reason other than bad input."""


class Recorder:
    """The job's side of the pipe to the companion process."""

    def __init__(self) -> None:
        self.pending = 0  # requests sent and not yet answered
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lstm_exp.record.recorder"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            # Its own session: a terminal's Ctrl-C reaches the job alone, even while this starts up.
            start_new_session=True,
        )

    def send(self, command: str, **fields) -> None:
        """Sends one request; its answer comes from `receive`."""
        self.process.stdin.write(json.dumps({"cmd": command, **fields}) + "\n")
        self.process.stdin.flush()
        self.pending += 1

    def receive(self) -> dict:
        """The answer to the oldest unanswered request.

        Raises:
            ConfigError: the request was refused as bad input (e.g. an unusable tracking store).
            RecorderError: anything else, including the recorder's death.
        """
        line = self.process.stdout.readline()
        self.pending -= 1
        if not line:
            raise RecorderError(f"the recorder process ended (exit status {self.process.wait()})")
        reply = json.loads(line)
        if "config_error" in reply:
            raise ConfigError(*reply["config_error"])
        if "error" in reply:
            raise RecorderError(reply["error"])
        return reply

    def request(self, command: str, **fields) -> dict:
        """Sends a request and waits for its answer, after those of any earlier ones.

        An earlier answer is still due when Ctrl-C interrupted its wait; it is read and dropped, so
        that this request gets its own.
        """
        while self.pending:
            try:
                self.receive()
            except (ConfigError, RecorderError):
                pass
        self.send(command, **fields)
        return self.receive()

    def close(self) -> None:
        """Lets the recorder go: every request has been answered, so it has nothing left to do.

        Not waiting for it to exit spares the job its interpreter's shutdown (~1 s of MLflow and
        matplotlib teardown).
        """
        if self.process.poll() is None:
            self.process.stdin.close()


_recorder: list[Recorder] = []


def recorder() -> Recorder:
    """This process's recorder, started on first use and reused by later jobs (sweeps)."""
    if not _recorder or _recorder[0].process.poll() is not None:
        _recorder[:] = [Recorder()]
        atexit.register(_recorder[0].close)
    return _recorder[0]


def _serve() -> None:
    from omegaconf import OmegaConf

    from lstm_exp.record import artifacts
    from lstm_exp.record import store as tracking

    clients: dict[str, object] = {}  # tracking URI -> MlflowClient
    open_runs: dict[str, str] = {}  # run id -> tracking URI, until the run has ended

    def handle(message: dict) -> dict:
        if message["cmd"] == "open":
            tracking_cfg = OmegaConf.create(message["tracking"])
            client, experiment_id = tracking.open_experiment(tracking_cfg)
            uri = tracking.store_uri(tracking_cfg)
            clients[uri] = client
            if message["resume"] and (twin := tracking.finished_twin(client, experiment_id, message["tags"])):
                return {"run_id": twin, "skipped": True, "uri": uri, "experiment_id": experiment_id}
            tags = dict(message["tags"])
            if message["parent"]:
                tags["mlflow.parentRunId"] = message["parent"]
            run_id = tracking.start_run(client, experiment_id, message["name"], tags)
            open_runs[run_id] = uri
            return {"run_id": run_id, "skipped": False, "uri": uri, "experiment_id": experiment_id}
        client = clients[message["uri"]]
        if message["cmd"] == "log":
            folder = Path(message["folder"])
            artifacts.draw_plots(folder, message["metrics"])
            tracking.log_run_directory(client, message["run_id"], folder, message["metrics"],
                                       message["params"])
            tracking.end_run(client, message["run_id"], "FINISHED")
        else:
            tracking.end_run(client, message["run_id"], message["status"], message.get("reason"))
        open_runs.pop(message["run_id"], None)
        return {}

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the job, which tells us the outcome
    # Replies get a private copy of stdout; whatever a library prints goes to stderr instead.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    for line in sys.stdin:
        message = json.loads(line)
        try:
            reply = handle(message)
        except ConfigError as error:
            reply = {"config_error": [error.key, error.received, error.allowed]}
        except Exception as error:  # noqa: BLE001 - answered, so that the job can end its run
            reply = {"error": f"{type(error).__name__}: {error}"}
        channel.write(json.dumps(reply, default=str) + "\n")
        if message["cmd"] == "open":
            import lstm_exp.record.plots  # noqa: F401  (matplotlib loads while the job computes, not after)
    for run_id, uri in open_runs.items():  # the job's process went away mid-run
        tracking.end_run(clients[uri], run_id, "FAILED", "the lstm_exp process ended during the run")


if __name__ == "__main__":
    _serve()
