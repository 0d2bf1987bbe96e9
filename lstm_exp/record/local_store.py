"""MLflow in this process: the store side of a run's life (open, log, end), one method per request.

A sweep's jobs use it directly; a single run reaches the same methods through the recorder process
(recorder.py), which only carries requests and replies.
"""

import logging
from pathlib import Path

from lstm_exp.config.schema import TrackingConfig
from lstm_exp.record import store, store_locks
from lstm_exp.record.http_bounds import http_bounds
from lstm_exp.record.metrics import RunMetrics
from lstm_exp.record.run_end import RunEnded, check_running, end_if_running
from lstm_exp.record.run_store import RunStore
from lstm_exp.record.server_access import server_refusals

log = logging.getLogger(__name__)


class LocalStore(RunStore):
    """Opens experiments and creates, logs and ends runs; one MLflow client per store URI."""

    def __init__(self) -> None:
        self._clients: dict[str, object] = {}
        self._timeouts: dict[str, float] = {}  # per store URI: the tracking.timeout_s it was opened with

    def _bounded(self, uri: str):
        """MLflow's requests to the store at `uri`, if a server, bounded by the timeout it was opened
        with (tracking.timeout_s's default for a store this object did not open)."""
        return http_bounds(self._timeouts.get(uri, TrackingConfig.timeout_s))

    @staticmethod
    def _refusals(uri: str, run_id: str):
        """A server's 401 or 403 to a request about an open run, as a `ServerRefusal` (EDIT revoked,
        a changed password): the job reports it with the runs it leaves RUNNING."""
        return server_refusals(("tracking.uri", uri), ("run", run_id), "EDIT")

    def client(self, uri: str):
        """The client of a store this object opened before (or opens now, for ending a run)."""
        if uri not in self._clients:
            from mlflow.tracking import MlflowClient

            store_locks.quiet_lock_retries()
            self._clients[uri] = MlflowClient(tracking_uri=uri)
        return self._clients[uri]

    def open(self, uri: str, experiment: str, timeout_s: float, tags: dict[str, str], name: str,
             parent: str | None, resume: bool) -> dict:
        """Creates a RUNNING run, or finds the FINISHED twin that `resume` reuses.

        Returns:
            {"run_id", "experiment_id", "skipped"}: skipped runs are twins, not new runs.

        Raises:
            ConfigError: the store cannot be opened, or another process held it locked for all of
                `timeout_s` (then no run was created).
        """
        self._timeouts[uri] = timeout_s
        with self._bounded(uri):
            client, experiment_id = store.open_experiment(uri, experiment, timeout_s)
            self._clients[uri] = client
            try:
                if resume and (twin := store.finished_twin(client, experiment_id, tags, timeout_s)):
                    return {"run_id": twin, "experiment_id": experiment_id, "skipped": True}
                if parent:
                    tags = {**tags, "mlflow.parentRunId": parent}
                # A user who may read the experiment but not log to it: refused before any run exists.
                with server_refusals(("tracking.uri", uri), ("tracking.experiment", experiment), "EDIT"):
                    run_id = store.start_run(client, experiment_id, name, tags, timeout_s)
            except store_locks.StoreLocked:
                raise store_locks.locked_store_error(uri, "tracking.uri", timeout_s) from None
            return {"run_id": run_id, "experiment_id": experiment_id, "skipped": False}

    def begin_open(self, **args) -> dict:
        """Opens the run now (`open`): in this process nothing else can go on while MLflow works."""
        return self.open(**args)

    def finish_open(self, pending: dict) -> dict:
        """The run `begin_open` opened."""
        return pending

    def log(self, uri: str, run_id: str, folder: str, metrics: RunMetrics, params: dict[str, str],
            tags: dict[str, str], state_plots: bool = True) -> None:
        """Draws the plots (`state_plots`: see `artifacts.draw_plots`); logs the model (if saved),
        folder, metrics, params and tags; ends it FINISHED.

        Raises:
            RunEnded: another process ended the run first (a stopped sweep); what was not logged yet
                stays unlogged, and the run keeps the status it was given.
            ServerRefusal: the server refused the user (EDIT revoked, a changed password).
        """
        from lstm_exp.record import artifacts, model_log

        with self._bounded(uri), self._refusals(uri, run_id):
            client = self.client(uri)
            check_running(client, run_id)  # before each step: nothing is added to a run that has ended
            artifacts.draw_plots(Path(folder), metrics, state_plots)
            check_running(client, run_id)
            model_log.log_stack_model(client, run_id, Path(folder))  # takes model.keras out of the folder
            check_running(client, run_id)
            store.log_run_directory(client, run_id, Path(folder), metrics.rows(), params, tags)
            ended = end_if_running(client, uri, run_id, "FINISHED")
            if ended != "FINISHED":
                raise RunEnded(f"run {run_id} was ended {ended} by another process while its results "
                               "were logged")

    def log_checkpoint(self, uri: str, run_id: str, path: str, best: bool) -> str:
        """Uploads a checkpoint into the run, then tags it newest (and best); its artifact path.

        Raises:
            RunEnded: the run was ended by another process: nothing is added to it.
        """
        from lstm_exp.record import checkpoint_log

        with self._bounded(uri):
            client = self.client(uri)
            check_running(client, run_id)
            return checkpoint_log.log_checkpoint(client, run_id, Path(path), best)

    def end(self, uri: str, run_id: str, status: str, reason: str | None = None,
            orphans_reason: str | None = None) -> str:
        """Ends a run FINISHED, FAILED or KILLED with its reason, if it is still RUNNING.

        Args:
            orphans_reason: for a sweep's parent: its children still RUNNING end FAILED (or KILLED
                with the parent) with this reason; their jobs died before they could end them.

        Returns:
            The run's status afterwards: `status`, or the one it had already ended with.
        """
        with self._bounded(uri), self._refusals(uri, run_id):
            client = self.client(uri)
            if orphans_reason:
                child_status = "KILLED" if status == "KILLED" else "FAILED"
                for child in store.running_children(client, run_id):
                    end_if_running(client, uri, child, child_status, orphans_reason)
            return end_if_running(client, uri, run_id, status, reason)

    def log_summary(self, uri: str, run_id: str, rows: list[dict], tags: dict[str, str]) -> None:
        """A sweep parent's table of jobs (`sweep_summary.json`, an MLflow table) and its tags."""
        from lstm_exp.record import summary

        with self._bounded(uri), self._refusals(uri, run_id):
            summary.log_summary(self.client(uri), run_id, rows, tags)
