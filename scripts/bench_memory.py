"""Peak memory of whole runs against the estimate `run.max_memory_gb` is checked against, and against
the arrays' bytes, side by side in one run.

Each size runs `python -m lstm_exp.run` in a child process of its own; its peak is the child's max
RSS (`os.wait4`). TensorFlow's base is measured in the same run, as the same command at T=1 (its
arrays are a few KiB), because it varies with the machine and with what got imported. The training
sizes run one epoch each, one size per term of `config/task_memory.py` that is the largest. Targets:
peak above the base <= 1.5x the arrays at T=2048, and the estimate within [1.0, 1.1]x every peak.

    .venv/bin/python scripts/bench_memory.py [--json bench_memory.json]
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODEL = ["model=stacked", "model.units=[256,256]", "input=random", "input.batch=32", "input.features=64",
         "tracking.enabled=false"]
TIMESTEPS = (128, 512, 2048)
TRAINING = {  # each of training's terms the largest in one size (config/task_memory.py)
    "drawing": ["task=copy", "task.symbols=32", "model.units=[16]", "task.timesteps=100",
                "task.train_size=50000", "task.val_size=1000", "task.batch_size=512"],
    "validation": ["task=adding", "model.units=[64]", "task.timesteps=200", "task.train_size=20000",
                   "task.val_size=2000", "task.batch_size=256"],
    "gradient": ["task=sine", "model.units=[256]", "task.timesteps=100", "task.train_size=4096",
                 "task.val_size=1024", "task.batch_size=1024"],
    "gradient, small batch": ["task=sine", "model.units=[512]", "task.timesteps=100", "task.train_size=1024",
                              "task.val_size=256", "task.batch_size=256"],
}
TARGET_ABOVE_BASE = 1.5  # peak above the base, over the arrays, at T=2048
TARGET_ESTIMATE = (1.0, 1.1)  # estimate over peak
MIB = 2**20


def peak_bytes(overrides: list[str], cwd: Path) -> int:
    """Max RSS of one whole `python -m lstm_exp.run` process."""
    cmd = [sys.executable, "-m", "lstm_exp.run", *overrides, f"hydra.run.dir={cwd}/run"]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss * 1024  # KiB on Linux


def planned(overrides: list[str]) -> tuple[int, int]:
    """(estimate, bytes of the run's distinct float32 arrays), from the config alone as the run does."""
    import lstm_exp
    from lstm_exp.config import names
    from lstm_exp.config.experiment import estimate_run, parse
    from lstm_exp.config.validate import expected_shapes

    experiment = parse(lstm_exp.compose(*overrides))
    if experiment.task is not None:
        return estimate_run(experiment, {}), 0
    shapes = expected_shapes(experiment.model, *experiment.input.planned_shape, one_step=False)
    # `output` is the last layer's sequence itself, not an array of its own.
    arrays = sum(4 * math.prod(s) for n, s in shapes.items() if n != names.OUTPUT)
    return estimate_run(experiment, shapes), arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from lstm_exp.compute.native import cpu
    from lstm_exp.config.memory import TF_BASE_BYTES

    print(f"CPU: {cpu.describe()}")
    print(f"model: {' '.join(MODEL)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        peak_bytes([*MODEL, "input.timesteps=1"], cwd)  # the native op built and cached before any figure
        base = peak_bytes([*MODEL, "input.timesteps=1"], cwd)
        print(f"TensorFlow's base (the same run at T=1): {base / MIB:.0f} MiB measured, "
              f"{TF_BASE_BYTES / MIB:.0f} MiB in the estimate")
        sizes = [(f"T={t}", [*MODEL, f"input.timesteps={t}"]) for t in TIMESTEPS]
        sizes += [(f"training ({kind}): {' '.join(o)}", [*o, "task.epochs=1", "tracking.enabled=false"])
                  for kind, o in TRAINING.items()]
        for label, overrides in sizes:
            estimate, arrays = planned(overrides)
            peak = peak_bytes(overrides, cwd)
            row = {"size": label, "peak_mib": peak / MIB, "estimate_mib": estimate / MIB,
                   "arrays_mib": arrays / MIB, "estimate_over_peak": estimate / peak,
                   "above_base_over_arrays": (peak - base) / arrays if arrays else None}
            rows.append(row)
    width = max(len(r["size"]) for r in rows)
    print(f"{'size':<{width}}  {'arrays':>8}  {'peak':>8}  {'estimate':>8}  {'(peak-base)/arrays':>18}  "
          f"{'estimate/peak':>13}")
    for r in rows:
        above = f"{r['above_base_over_arrays']:.2f}x" if r["above_base_over_arrays"] else "-"
        print(f"{r['size']:<{width}}  {r['arrays_mib']:>8.0f}  {r['peak_mib']:>8.0f}  "
              f"{r['estimate_mib']:>8.0f}  {above:>18}  {r['estimate_over_peak']:>12.3f}x")
    longest = next(r for r in rows if r["size"] == f"T={TIMESTEPS[-1]}")
    met_above = longest["above_base_over_arrays"] <= TARGET_ABOVE_BASE
    met_estimate = all(TARGET_ESTIMATE[0] <= r["estimate_over_peak"] <= TARGET_ESTIMATE[1] for r in rows)
    print(f"target: peak above the base <= {TARGET_ABOVE_BASE}x the arrays at T={TIMESTEPS[-1]}: "
          f"{longest['above_base_over_arrays']:.2f}x, {'met' if met_above else 'NOT met'}")
    print(f"target: estimate within [{TARGET_ESTIMATE[0]}, {TARGET_ESTIMATE[1]}]x the peak at every size: "
          f"{'met' if met_estimate else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu.describe(), "base_mib": base / MIB,
                                         "tf_base_mib": TF_BASE_BYTES / MIB, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
