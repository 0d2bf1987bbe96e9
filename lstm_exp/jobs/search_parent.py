"""A search's parent run: one per study, opened on its first search and taken up again on resume.

Its children are the trial runs of every search of the study; at the end it holds the study's summary
(`record/search_record.py`): the trials table, the best trial, the plots.
"""

import json
import math
import sys
from dataclasses import dataclass

import optuna

from lstm_exp.config import names
from lstm_exp.config.search_settings import SearchSettings
from lstm_exp.config.specs import TrackingSpec
from lstm_exp.jobs.study import REASON, RUN_ID, STALE, killed_note

STALE_RUN_REASON = "its search was killed before the trial ended (the trial is asked again)"
ORPHAN_REASON = "the trial's job ended without ending its run (its process was killed or lost)"


@dataclass
class SearchParent:
    """The parent's record, and what concluding the study on it needs."""

    record: object  # RunRecord
    client: object  # MlflowClient
    study_name: str
    storage: str

    @classmethod
    def open(cls, uri: str, tracking: TrackingSpec, study_name: str, storage: str, overrides: list[str]):
        """The study's parent run: the earlier searches' (made RUNNING again), else a new one."""
        from lstm_exp.record import search_record, store
        from lstm_exp.record.local_store import LocalStore
        from lstm_exp.record.run_record import OpenRequest, RunRecord

        local = LocalStore()
        client, experiment_id = store.open_experiment(uri, tracking.experiment, tracking.timeout_s)
        run_id = search_record.study_parent(client, experiment_id, study_name)
        if run_id is not None:
            record = RunRecord(local, uri, run_id, experiment_id, tracking.timeout_s, ORPHAN_REASON)
        else:
            tags = {"lstm_exp.sweep": "parent", "lstm_exp.overrides": " ".join(overrides),
                    search_record.STUDY_TAG: study_name, "lstm_exp.study_storage": storage,
                    "mlflow.source.name": "lstm_exp.run -m hydra/sweeper=search"}
            request = OpenRequest(uri, tracking.experiment, tracking.timeout_s, tags,
                                  tracking.run_name or f"search {study_name}")
            record = RunRecord.open(local, request, orphans_reason=ORPHAN_REASON)
        return cls(record, local.client(uri), study_name, storage)

    def stale_runs(self) -> dict:
        """The trial runs an earlier, killed search left RUNNING, by trial number."""
        from lstm_exp.record import search_record

        return search_record.running_trial_runs(self.client, self.record.run_id)

    def end_stale(self, runs: dict, asked_again: dict[int, int]) -> None:
        """Ends the runs of `stale_runs` FAILED, each tagged FAIL with the trial that asks it again."""
        from lstm_exp.record import search_record

        notes = {killed: killed_note(again) for killed, again in asked_again.items()}
        for run_id in search_record.end_stale_children(self.client, self.record.uri, runs, notes,
                                                       STALE_RUN_REASON):
            print(f"search: run {run_id} of a killed search ended FAILED", file=sys.stderr)

    def conclude(self, study: optuna.Study, settings: SearchSettings, outcomes: dict) -> int:
        """Logs the study's summary on the parent, prints the best trial and the link, ends the parent.

        Returns:
            The search's exit status: 0 when the study has a completed trial, else 1.
        """
        from lstm_exp.record import search_record, store

        for _, outcome in outcomes.values():  # runs whose job failed or died carry no trial state yet
            if outcome.run_id and outcome.trial_state == "FAIL":
                search_record.tag_trial_run(self.client, outcome.run_id, "FAIL", outcome.trial_note)
        trials = study.get_trials(deepcopy=False)
        rows = [_row(t) for t in trials]
        best = _best(study, settings.metric)
        counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("COMPLETE", "PRUNED", "FAIL")}
        killed = [t for t in trials if t.user_attrs.get(STALE)]
        text = _description(self.study_name, self.storage, counts, best, settings, killed)
        tags = {"mlflow.note.content": text, "lstm_exp.jobs": f"{len(rows)} trials",
                "lstm_exp.study_storage": self.storage}
        params = {"search.study_name": self.study_name, "search.storage": self.storage}
        metrics = {names.TRIALS_COUNTED: counts["COMPLETE"] + counts["PRUNED"],
                   names.TRIALS_FAILED: counts["FAIL"], names.TRIALS_KILLED: len(killed)}
        search_record.log_study(self.client, self.record.run_id, rows, best, tags, params, study, metrics)
        self.record.end("FINISHED", orphans_reason=ORPHAN_REASON)  # a job lost by its launcher
        print(text.replace("**", ""))
        record = self.record
        print(f"search parent run {record.run_id}: "
              f"{store.ui_command(record.uri, record.experiment_id, record.run_id)}")
        return 0 if best is not None else 1


def _row(trial: optuna.trial.FrozenTrial) -> dict:
    seconds = trial.duration.total_seconds() if trial.duration else None
    return {"trial": trial.number, "state": trial.state.name,
            "value": trial.value if trial.value is not None and math.isfinite(trial.value) else None,
            "params": trial.params, "seconds": seconds, "run_id": trial.user_attrs.get(RUN_ID),
            "counted": trial.state.name in ("COMPLETE", "PRUNED"), "note": trial.user_attrs.get(REASON)}


def _best(study: optuna.Study, metric: str) -> dict | None:
    try:
        best = study.best_trial
    except ValueError:  # no COMPLETE trial
        return None
    return {"number": best.number, "value": best.value, "params": best.params,
            "run_id": best.user_attrs.get(RUN_ID), "metric": metric}


def _description(name: str, storage: str, counts: dict, best: dict | None, settings: SearchSettings,
                 killed: list) -> str:
    counted = counts["COMPLETE"] + counts["PRUNED"]
    head = (f"Search study **{name}** ({storage}): {counted} of {settings.n_trials} trials counted "
            f"({counts['COMPLETE']} complete, {counts['PRUNED']} pruned), {counts['FAIL']} failed (not "
            f"counted); sampler {settings.sampler}, pruner {settings.pruner}, {settings.direction} "
            f"{settings.metric}.")
    if killed:  # Optuna keeps a FAIL trial: the record of the attempt, not a finished trial run twice
        head += f"\nKilled attempts ({len(killed)}, FAIL): " + "; ".join(
            f"trial {t.number} (run {t.user_attrs.get(RUN_ID, 'none')}): {t.user_attrs.get(REASON)}"
            for t in killed) + "."
    if best is None:
        return head + "\nNo trial completed: no best trial."
    return (head + f"\nBest trial {best['number']}: {settings.metric} {best['value']:.6g}, run "
            f"{best['run_id']}, params {json.dumps(best['params'], sort_keys=True)}")
