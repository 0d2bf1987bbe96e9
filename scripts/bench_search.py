"""The search sweeper measured (issue 24): pruning's saving, its cost in quality, and kill + resume.

Four 24-trial studies of `adding` over model.units, task.learning_rate and model.cell, each on two joblib
workers, through the real CLI, each in its own launch directory:
  1. TPE + median pruning;  2. TPE, no pruning;  3. random search, no pruning (the 24-point baseline);
  4. TPE + pruning, killed (SIGKILL to the whole process group) after ~10 finished trials, then run again.
Printed side by side: wall seconds and CPU seconds (the search process and its joblib workers), the
epochs trained, the pruning / no-pruning ratios (target for wall <= 0.7), the fraction of trials pruned
(target >= 0.25), the best val_loss of each (target: pruned TPE's best <= random's best), and for 4: the
study's trials counted toward n_trials, its trials in all, child runs, RUNNING runs. Name the CPU with the
figures (it is printed first).

Before the timed studies, an untimed warm-up trains each model.units of the space for one epoch: the
native op's build and `auto`'s measured engine choices (kept per CPU and shape class in the user's
cache, engine_choice.py) are then paid by neither study, not by whichever runs first. Wall time on a
shared machine is noisy: CPU time varies less; `--repeat N` runs N pruning / no-pruning pairs in
alternating order (ABBA...) and prints each pair's ratios and their median.

    .venv/bin/python scripts/bench_search.py [--smoke] [--epochs N --train-size N] [--ratio-only --repeat N]
    # full: 16 epochs of 4096 sequences, a training whose epochs dominate a trial (what a search is for);
    # smoke: 8 trials, tiny trainings. Pruning saves epochs, not a trial's fixed cost (README: the search's
    # "Measured"), so its saving grows with the epochs' share of a trial.
"""

import argparse
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNITS = ("[16]", "[32]", "[64]")
SPACE = (f"model.units=choice({','.join(UNITS)})", "task.learning_rate=tag(log, interval(1e-4, 3e-1))",
         "model.cell=choice(lstm,gru)")
SIZES = {"full": dict(trials=24, kill_after=10, task=("task.epochs=16", "task.train_size=4096",
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
            "epochs": sum(len(t.intermediate_values) for t in study.trials),  # every job reports its epochs
            "children": len(children), "running": sum(r.info.status == "RUNNING" for r in runs)}


def _cpu_s() -> float:
    """User + system seconds of this process's waited-for children and theirs (joblib's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _warm_up(size: dict, launch: Path) -> None:
    """One untimed epoch per model.units of the space (LSTM: the cell `auto` times): the native op's
    build and the engine choices of the studies' shape classes land in the cache before either study."""
    task = [o for o in size["task"] if not o.startswith("task.epochs=")]
    command = [sys.executable, "-m", "lstm_exp.run", "-m", "task=adding", *task, "task.epochs=1",
               f"model.units={','.join(UNITS)}", "model.cell=lstm", "tracking.enabled=false",
               f"hydra.sweep.dir={launch / 'sweep'}"]
    done = subprocess.run(command, cwd=launch, capture_output=True, text=True, timeout=WAIT_S)
    if done.returncode != 0:
        raise SystemExit(f"warm-up failed ({done.returncode}): {done.stderr[-3000:]}")


def _run(command: list[str], launch: Path, kill_after: int | None = None) -> tuple[float, float]:
    """Runs the search; with `kill_after`, SIGKILLs it once that many trials have finished.

    Returns:
        (wall s, CPU s of the search process and its workers).
    """
    log_path = launch / ("killed.log" if kill_after else "search.log")
    cpu = _cpu_s()
    start = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=launch, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + WAIT_S
            while proc.poll() is None and time.monotonic() < deadline:
                # jobs/text.py's trial_line: "trial 7 [5/24]  ..." (a FAIL: "[4/24, this one not counted]")
                finished = len(re.findall(r"^trial \d+ \[\d+/\d+", log_path.read_text(), re.M))
                if kill_after and finished >= kill_after:
                    break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=120)
    if not kill_after and proc.returncode != 0:
        raise SystemExit(f"search failed ({proc.returncode}): {log_path.read_text()[-3000:]}")
    return time.perf_counter() - start, _cpu_s() - cpu


def _study_line(label: str, result: dict) -> str:
    return (f"{label:20s} {result['wall_s']:7.1f} s wall {result['cpu_s']:7.1f} s CPU  epochs "
            f"{result['epochs']:3d}  pruned {result['pruned']}/{result['trials']}  best val_loss "
            f"{result['best']:.4g}")


def _timed_study(size: dict, label: str, sampler: str, pruner: str, launch: Path) -> dict:
    launch.mkdir()
    wall, cpu = _run(_command(size, sampler, pruner, launch), launch)
    result = {"wall_s": wall, "cpu_s": cpu, **_study(launch)}
    print(_study_line(label, result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="8 trials of tiny trainings")
    parser.add_argument("--epochs", type=int, help="task.epochs (full: 16)")
    parser.add_argument("--train-size", type=int, help="task.train_size (full: 4096)")
    parser.add_argument("--ratio-only", action="store_true", help="only studies 1 and 2: pruning's saving")
    parser.add_argument("--kill-only", action="store_true", help="only study 4: kill + resume")
    parser.add_argument("--repeat", type=int, default=1,
                        help="pairs of studies 1 and 2, in alternating order (default 1)")
    args = parser.parse_args()
    size = dict(SIZES["smoke" if args.smoke else "full"])
    replaced = {"task.epochs": args.epochs, "task.train_size": args.train_size}
    size["task"] = tuple(f"{key}={replaced[key]}" if replaced.get(key := o.split("=")[0]) else o
                         for o in size["task"])
    print(f"CPU: {_cpu()}; {size['trials']} trials, 2 joblib workers, {' '.join(size['task'])}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        (Path(tmp) / "warm_up").mkdir()
        _warm_up(size, Path(tmp) / "warm_up")
        if args.kill_only:
            _kill_and_resume(size, Path(tmp) / "killed")
            return
        pairs = []
        pair = {"tpe+median": ("tpe", "median"), "tpe, no pruning": ("tpe", "none")}
        for r in range(max(1, args.repeat)):
            order = list(pair) if r % 2 == 0 else list(pair)[::-1]  # ABBA: drifting load hits both alike
            done = {label: _timed_study(size, label, *pair[label], Path(tmp) / f"{r}_{pair[label][1]}")
                    for label in order}
            pairs.append(done)
        pruned, plain = pairs[0]["tpe+median"], pairs[0]["tpe, no pruning"]
        ratios = [(p["tpe+median"]["wall_s"] / p["tpe, no pruning"]["wall_s"],
                   p["tpe+median"]["cpu_s"] / p["tpe, no pruning"]["cpu_s"]) for p in pairs]
        print("\npruning / no pruning, per pair: "
              + "  ".join(f"wall {w:.2f} CPU {c:.2f}" for w, c in ratios)
              + (f"; median wall {statistics.median(w for w, _ in ratios):.2f}, CPU "
                 f"{statistics.median(c for _, c in ratios):.2f}" if len(ratios) > 1 else "")
              + " (target for wall <= 0.7)")
        print(f"fraction pruned: {pruned['pruned'] / pruned['trials']:.2f} (target >= 0.25); epochs trained "
              f"{pruned['epochs']} of {plain['epochs']}")
        if args.ratio_only:
            return
        rand = _timed_study(size, "random, no pruning", "random", "none", Path(tmp) / "random")
        print(f"best val_loss: tpe+median {pruned['best']:.4g}  vs  random {rand['best']:.4g} "
              f"({'within' if pruned['best'] <= rand['best'] else 'NOT within'} the random search's best)")
        _kill_and_resume(size, Path(tmp) / "killed")


def _kill_and_resume(size: dict, launch: Path) -> None:
    """Study 4: SIGKILLed after `kill_after` finished trials, then the same command again."""
    launch.mkdir()
    command = _command(size, "tpe", "median", launch)
    _run(command, launch, kill_after=size["kill_after"])
    killed = _study(launch)
    if killed["done"] >= size["trials"]:
        raise SystemExit(f"the search was not killed: it finished all {killed['done']} trials first")
    _run(command, launch)
    resumed = _study(launch)
    print(f"killed after {killed['done']} finished trials ({killed['running']} runs left RUNNING); resumed: "
          f"{resumed['done']} trials counted toward n_trials={size['trials']}, {resumed['trials']} in the "
          f"study ({resumed['trials'] - resumed['done']} a dead worker's, asked again), "
          f"{resumed['children']} child runs, {resumed['running']} RUNNING")


if __name__ == "__main__":
    main()
