"""A tracked job: its run opened (or found, with `resume`), computed inside it, recorded, ended.

Nothing is computed before the store answers; `RunRecord` ends the run FINISHED, FAILED with its
reason, or KILLED, so a run is never left RUNNING.
"""

import tempfile
import time
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lstm_exp.config.search_settings import TrialSpec
from lstm_exp.config.specs import Experiment
from lstm_exp.config.store_checks import MAX_RUN_NAME
from lstm_exp.errors import ConfigError
from lstm_exp.jobs.outcome import JobOutcome, RecordedFailure
from lstm_exp.jobs.text import epoch_printer, format_report, job_overrides
from lstm_exp.jobs.trial_reporting import PRUNED
from lstm_exp.record import search_record
from lstm_exp.record import store as mlflow_store
from lstm_exp.record.identity import config_hash
from lstm_exp.record.run_store import RunStore
from lstm_exp.record.server_access import ServerRefusal, write_access_lost


class RecordedJob:
    """One job's run: what opening it needs, and the steps inside it.

    Args:
        cfg: the composed config: its resolved tree is recorded (config.yaml, params, config hash).
        experiment: the same config, parsed.
        overrides: the job's command-line overrides (its tags and default run name).
        parent_run_id: the sweep's parent run, for a sweep's job.
        launch_dir: where the command was started; the default store is there.
        trial: a search's trial (reported to per epoch, maybe pruned); None outside a search.
    """

    def __init__(self, cfg: DictConfig, experiment: Experiment, overrides: list[str],
                 parent_run_id: str | None, launch_dir: Path | None, trial: TrialSpec | None = None) -> None:
        self.cfg, self.experiment, self.overrides = cfg, experiment, overrides
        self.parent_run_id, self.trial = parent_run_id, trial
        self.uri = mlflow_store.default_store_uri(experiment.tracking.uri, launch_dir)
        self.tags = mlflow_store.run_tags(experiment, config_hash(cfg), overrides)

    def run(self, store: RunStore, prepared, start: float) -> JobOutcome:
        """Opens the run while TensorFlow loads, computes and records inside it; the job's outcome."""
        from lstm_exp.jobs.continuation import find_start
        from lstm_exp.record.run_record import Skipped

        # Before the run opens: a resume_from that cannot be continued is bad input, and leaves no run.
        self.start = find_start(self.experiment, self.uri, self.tags)
        record = self._open(store)
        if isinstance(record, Skipped):
            skipped = f"skipped: this config is already recorded as run {record.run_id}"
            return JobOutcome(0, "SKIPPED", skipped, record.run_id, record.experiment_id, self.uri,
                              seconds=time.perf_counter() - start)
        try:
            with record:
                result, report, summary, trial = self._compute_and_record(record, prepared)
        except ServerRefusal as refused:  # EDIT revoked mid-run: the run may be left RUNNING (record.status)
            left = [record.run_id] if record.status is None else []
            lost = write_access_lost(refused, self.uri, self.experiment.tracking.experiment, left)
            raise RecordedFailure(record.run_id, left_running=bool(left)) from lost
        except Exception as error:
            raise RecordedFailure(record.run_id) from error
        return JobOutcome(0, "FINISHED", report + self._links(record), record.run_id, record.experiment_id,
                          self.uri, seconds=time.perf_counter() - start, metrics=summary,
                          output_shape=str(tuple(result.arrays["output"].shape)), **trial)

    def _open(self, store: RunStore):
        from lstm_exp.compute.tf_runtime import load_tensorflow, quiet_native_stderr
        from lstm_exp.record.run_record import OpenRequest, RunRecord

        tracking = self.experiment.tracking
        tags = {**self.tags, **self.start.tags}
        if self.trial is not None:
            tags |= search_record.trial_tags(self.trial.study, self.trial.number)
        request = OpenRequest(self.uri, tracking.experiment, tracking.timeout_s, tags,
                              run_name(tracking.run_name, self.experiment.model_name, self.overrides),
                              self.parent_run_id, self.experiment.resume)

        def load_quietly():
            with quiet_native_stderr():
                load_tensorflow(self.experiment.seed)

        try:
            mlflow_store.check_reachable(self.uri, tracking.timeout_s)
            return RunRecord.open(store, request, meanwhile=load_quietly)
        except ConfigError as error:
            if self.parent_run_id is None or isinstance(error, ServerRefusal):
                raise  # a refusal names the user and what to do: a job of a sweep says the same
            # The sweep's start reached this store: losing it since is this job's failure, not bad input.
            raise ConnectionError(f"lost the tracking store since the sweep started: {error}") from None

    def _compute_and_record(self, record, prepared):
        """Inside the open run: executes, writes the run's folder, and logs it.

        Returns:
            (result, report, summary, trial): `trial` holds a search trial's `JobOutcome` fields.
        """
        from lstm_exp.compute.analyses import layer_pca
        from lstm_exp.compute.runner import execute
        from lstm_exp.compute.training import Checkpointing
        from lstm_exp.jobs.continuation import checkpoint_saver, temporary_folder
        from lstm_exp.jobs.slurm_requeue import HeldRequeue
        from lstm_exp.record import artifacts
        from lstm_exp.record.metrics import run_metrics

        experiment = self.experiment
        on_epoch = epoch_printer(experiment.task)
        reporter = None
        if self.trial is not None:
            from lstm_exp.jobs.trial_reporting import TrialReporter

            reporter = TrialReporter(self.trial, on_epoch)
            on_epoch = reporter.on_epoch
        held = HeldRequeue.install() if experiment.task else None  # a Slurm job's requeue: see there
        try:
            with temporary_folder() as checkpoints:
                every = experiment.task.checkpoint_every if experiment.task else 1
                saver = checkpoint_saver(record, Path(checkpoints), held and held.after_checkpoint)
                result = execute(experiment, prepared, on_epoch=on_epoch,
                                 checkpointing=Checkpointing(every, saver, self.start.checkpoint))
        finally:
            if held:
                held.uninstall()
        report = format_report(experiment, result)
        trial, trial_tags, state = {}, {}, None
        if reporter is not None and result.training is not None:
            t = result.training
            state, value, note = reporter.verdict({"val_loss": t.val_loss[-1], "train_loss": t.train_loss[-1],
                                                   "baseline_loss": t.baseline_loss})
            trial = {"trial_state": state, "objective": value, "trial_note": note, "epochs": len(t.val_loss)}
            trial_tags = search_record.trial_state_tags(state, note)
        with tempfile.TemporaryDirectory(prefix="lstm_exp_run_") as tmp:
            fixed_points = {}
            if experiment.analysis.fixed_points:  # into the run's folder, before summary.txt holds the report
                from lstm_exp.record.dynamics_run import analyse_result

                fixed_points, lines = analyse_result(experiment.analysis, result, Path(tmp))
                report += "\n" + lines
            pca = layer_pca(result.arrays, result.spec, prepared.data.lengths)  # one SVD per layer
            config_yaml = OmegaConf.to_yaml(self.cfg, resolve=True)
            folder = artifacts.write_run_directory(Path(tmp), config_yaml, result, report, pca,
                                                   experiment.tracking.log_model)
            metrics = run_metrics(result, prepared.data, pca)
            metrics = replace(metrics, final={**metrics.final, **fixed_points})
            params = mlflow_store.flatten(OmegaConf.to_container(self.cfg, resolve=True))
            tags = {**mlflow_store.version_tags(), **artifacts.description_tags(experiment, result)}
            tags |= trial_tags
            # A pruned trial's run keeps its arrays, analyses and loss curves, not the pictures of its
            # states: ~0.6 s of CPU a trial, for a stack stopped because it learned worse than the median.
            record.finish(str(folder), metrics, params, tags, state_plots=state != PRUNED)
        return result, report, metrics.summary(), trial

    def _links(self, record) -> str:
        """Where the run is, and how to browse it (and load its model) — after the report."""
        tracking = self.experiment.tracking
        links = (f"\nMLflow run {record.run_id} in experiment '{tracking.experiment}' ({self.uri})"
                 f"\nbrowse it: {mlflow_store.ui_command(self.uri, record.experiment_id, record.run_id)}")
        if tracking.log_model:
            links += f"\nthe stack as a model: mlflow.pyfunc.load_model('runs:/{record.run_id}/model')"
        return links


def run_name(tracking_name: str | None, model_name: str, overrides: list[str]) -> str:
    """`tracking.run_name`, else the model's name and the job's own overrides (cut to MLflow's limit)."""
    if tracking_name:
        return tracking_name
    # resume=true must not rename a re-run job: its name stays the one its first run had.
    rest = [o for o in job_overrides(overrides) if not o.startswith("model=")]
    name = " ".join([model_name, *rest])
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 3] + "..."
