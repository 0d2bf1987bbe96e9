"""A training past its Slurm time limit is requeued and goes on from its last checkpoint
(`hydra/launcher=slurm`, submitit's checkpointing protocol, jobs/continuation.py), on a real
single-node Slurm (tests/slurm_cluster.py), to the same weights as a training never interrupted."""

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from faults import fault_overrides
from mlflow.tracking import MlflowClient
from slurm_cluster import slurm_cluster

import lstm_exp
from lstm_exp.compute.runner import prepare
from lstm_exp.compute.training import train
from lstm_exp.config.experiment import parse

SLURM = ("hydra/launcher=slurm", "hydra.launcher.poll_s=1", "hydra.launcher.lost_job_grace_s=5")
# USR2 is asked for 5 s before the one-minute limit; Slurm, checking limits every 30 s, sends it some
# 30 s after an attempt starts. A training job holds it until its next checkpoint or until 10 s before
# its limit (jobs/slurm_requeue.py), then is requeued.
TIME_LIMIT = ("hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5",
              "hydra.launcher.max_num_timeout=8")
# A small training; its first attempt stalls after epoch 2's checkpoint (tests/faults.py), so that it
# needs a requeue however fast the machine (on a slow one, Slurm's warning may come before epoch 2).
TRAINING = ("task=adding", "model.units=[16]", "task.timesteps=20", "task.train_size=1024",
            "task.val_size=64", "task.batch_size=32", "task.epochs=4", "seed=3")
STALL = fault_overrides(stall=[3], kill_after_epochs=2)
SWEEP_TIMEOUT_S = 1500  # every attempt's TensorFlow start, Slurm's requeue and its scheduling included
REQUEUE_WAIT_S = 15  # Slurm holds a requeued job this long (its credential lifetime; by default 120 s)


@pytest.mark.slow
@pytest.mark.service
def test_a_training_past_its_time_limit_is_requeued_and_ends_with_the_same_weights(tmp_path: Path):
    launch = tmp_path / "launch"
    launch.mkdir()
    # Without accounting: the watcher must tell a requeued job from a lost one by squeue alone.
    with slurm_cluster(tmp_path / "cluster", accounting=False, cred_expire_s=REQUEUE_WAIT_S) as cluster:
        done = run_cli("-m", *SLURM, *TIME_LIMIT, *TRAINING, *STALL, f"hydra.sweep.dir={launch / 'sweep'}",
                       cwd=launch, env=cluster.env, timeout=SWEEP_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("lstm_exp").experiment_id
    parents = client.search_runs([experiment], "tags.`lstm_exp.sweep` = 'parent'")
    assert [p.info.status for p in parents] == ["FINISHED"]
    runs = [r for r in client.search_runs([experiment], "", order_by=["attributes.start_time ASC"])
            if r.data.tags.get("lstm_exp.sweep") != "parent"]
    *stopped, final = runs
    print("attempts:", [(r.info.status, r.data.tags.get("lstm_exp.checkpoint"),
                         r.data.tags.get("lstm_exp.requeues")) for r in runs])
    assert stopped, "no attempt was requeued"
    assert final.info.status == "FINISHED"
    assert all(r.info.status in ("FAILED", "KILLED") for r in stopped)
    assert int(final.data.tags["lstm_exp.requeues"]) >= 1
    # Each run went on from the newest earlier run that had a checkpoint (a run stopped before its
    # first checkpoint is passed over, and the next attempt starts where the one before it left off).
    with_checkpoint = [r for r in stopped if "lstm_exp.checkpoint" in r.data.tags]
    assert final.data.tags["lstm_exp.continued_from"] == with_checkpoint[-1].info.run_id
    assert len(client.get_metric_history(final.info.run_id, "val_loss")) == 4

    cfg = lstm_exp.compose("tracking.enabled=false", *TRAINING)
    experiment_spec = parse(cfg)
    prepared = prepare(experiment_spec)
    straight = train(experiment_spec.task, prepared.spec, prepared.weights, experiment_spec.seed)
    path = client.download_artifacts(final.info.run_id, "weights.npz", str(tmp_path))
    with np.load(path) as archive:
        got = {name: archive[name] for name in archive.files}
    assert got.keys() == straight.weights.keys()
    for name, expected in straight.weights.items():
        assert got[name].tobytes() == expected.tobytes(), name
