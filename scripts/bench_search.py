"""The search sweeper measured (issue 24): pruning's saving, its cost in quality, and kill + resume.

Four 24-trial studies of `adding` over model.units, task.learning_rate and model.cell, each on two joblib
workers, through the real CLI, each in its own launch directory:
  1. TPE + median pruning;  2. TPE, no pruning;  3. random search, no pruning (the 24-point baseline);
  4. TPE + pruning, killed (SIGKILL to the whole process group) after ~10 finished trials, then run again.
Printed side by side: wall seconds (and the pruning / no-pruning ratio, target <= 0.7), the fraction of
trials pruned (target >= 0.25), the best val_loss of each (target: pruned TPE's best <= random's best),
and for 4: the study's trials counted toward n_trials, its trials in all, child runs, RUNNING runs.
Name the CPU with the figures (it is printed first). Wall time on a shared machine is noisy: one
sample per study; run it on a quiet machine for figures to quote.

    .venv/bin/python scripts/bench_search.py [--smoke] [--epochs N --train-size N]
    # smoke: 8 trials, tiny trainings. Pruning saves epochs, not a trial's fixed cost (the job's start,
    # tracing, recording: ~10 s here), so its saving grows with the epochs' share of a trial.
"""

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPACE = ("model.units=choice([16],[32],[64])", "task.learning_rate=tag(log, interval(1e-4, 3e-1))",
         "model.cell=choice(lstm,gru)")
SIZES = {"full": dict(trials=24, kill_after=10, task=("task.epochs=8", "task.train_size=1024",
                                                      "task.val_size=256", "task.timesteps=20")),
         "smoke": dict(trials=8, kill_after=3, task=("task.epochs=4", "task.train_size=64",
                                                     "task.val_size=32", "task.timesteps=10"))}
WAIT_S = 3600


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or 'unknown CPU'}, {os.cpu_count()} cores"


def _command(size: dict, sampler: str, pruner: str, launch: Path) -> list[str]:
    return [sys.executable, "-m", "lstm_exp.run", "-m", "hydra/sweeper=search", "task=adding", *size["task"],
            *SPACE, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_workers=2",
            f"hydra.sweeper.n_trials={size['trials']}", f"hydra.sweeper.sampler={sampler}",
            f"hydra.sweeper.pruner={pruner}", "hydra.sweeper.seed=0", f"hydra.sweep.dir={launch / 'sweep'}"]


def _study(launch: Path) -> dict:
    """The study's trial states and best value; the store's child runs and their statuses."""
    import optuna
    from mlflow.tracking import MlflowClient

    from lstm_exp.jobs.study import open_storage, trials_done

    storage = open_storage(str(launch / "optuna_journal.log"))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    states = [t.state.name for t in study.trials]
    client = MlflowClient(f"sqlite:///{launch / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("lstm_exp").experiment_id], max_results=1000)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return {"done": trials_done(study), "trials": len(states), "pruned": states.count("PRUNED"),
            "failed": states.count("FAIL"), "best": study.best_value,
            "children": len(children), "running": sum(r.info.status == "RUNNING" for r in runs)}


def _run(command: list[str], launch: Path, kill_after: int | None = None) -> float:
    """Runs the search; with `kill_after`, SIGKILLs it once that many trials have finished. Wall s."""
    log_path = launch / ("killed.log" if kill_after else "search.log")
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=launch, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + WAIT_S
            while proc.poll() is None and time.monotonic() < deadline:
                finished = len(re.findall(r"^trial \d+ \[of", log_path.read_text(), re.M))
                if kill_after and finished >= kill_after:
                    break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=120)
    if not kill_after and proc.returncode != 0:
        raise SystemExit(f"search failed ({proc.returncode}): {log_path.read_text()[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="8 trials of tiny trainings")
    parser.add_argument("--epochs", type=int, help="task.epochs (full: 8)")
    parser.add_argument("--train-size", type=int, help="task.train_size (full: 1024)")
    parser.add_argument("--ratio-only", action="store_true", help="only studies 1 and 2: pruning's saving")
    args = parser.parse_args()
    size = dict(SIZES["smoke" if args.smoke else "full"])
    replaced = {"task.epochs": args.epochs, "task.train_size": args.train_size}
    size["task"] = tuple(f"{key}={replaced[key]}" if replaced.get(key := o.split("=")[0]) else o
                         for o in size["task"])
    print(f"CPU: {_cpu()}; {size['trials']} trials, 2 joblib workers, {' '.join(size['task'])}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        results = {}
        studies = (("tpe+median", "tpe", "median"), ("tpe, no pruning", "tpe", "none"),
                   ("random, no pruning", "random", "none"))
        for label, sampler, pruner in studies[:2] if args.ratio_only else studies:
            launch = Path(tmp) / label.replace(" ", "_").replace(",", "")
            launch.mkdir()
            seconds = _run(_command(size, sampler, pruner, launch), launch)
            results[label] = {"wall_s": seconds, **_study(launch)}
            print(f"{label:20s} {seconds:7.1f} s wall  pruned {results[label]['pruned']}/"
                  f"{results[label]['trials']}  best val_loss {results[label]['best']:.4g}", flush=True)
        pruned, plain = results["tpe+median"], results["tpe, no pruning"]
        print(f"\nwall time, pruning / no pruning: {pruned['wall_s'] / plain['wall_s']:.2f} (target <= 0.7)")
        print(f"fraction pruned: {pruned['pruned'] / pruned['trials']:.2f} (target >= 0.25)")
        if args.ratio_only:
            return
        launch = Path(tmp) / "killed"
        launch.mkdir()
        command = _command(size, "tpe", "median", launch)
        _run(command, launch, kill_after=size["kill_after"])
        killed = _study(launch)
        _run(command, launch)
        resumed = _study(launch)
    rand = results["random, no pruning"]
    print(f"best val_loss: tpe+median {pruned['best']:.4g}  vs  random {rand['best']:.4g} "
          f"({'within' if pruned['best'] <= rand['best'] else 'NOT within'} the random search's best)")
    print(f"killed after {killed['done']} finished trials ({killed['running']} runs left RUNNING); resumed: "
          f"{resumed['done']} trials counted toward n_trials={size['trials']}, {resumed['trials']} in the "
          f"study ({resumed['trials'] - resumed['done']} a dead worker's, asked again), "
          f"{resumed['children']} child runs, {resumed['running']} RUNNING")


if __name__ == "__main__":
    main()
