"""What `auto`'s forward measurement costs a run: the tutorial (`model=stacked`) in fresh processes.

Each sample is a new Python process running `lstm_exp.execute` on the tutorial's config with
tracking off; it reports the run's `build_s` (building the engine, and for `auto` measuring the
candidates or reading the kept choice) and `forward_s` (the pass itself). Variants, interleaved
round by round:
  auto, first use   a cache folder holding the built native op but no choices.json: auto measures;
  auto, kept        the same folder after a first use: auto reads its kept choice;
  native / keras    `model.implementation` set by name: nothing measured.
The native op itself is copied from this user's cache (built once if need be), so no variant pays
its compile. Medians in ms; the CPU named.

    .venv/bin/python scripts/bench_auto_first_run.py [--rounds N] [extra overrides, e.g. run.repeat=5]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys
import lstm_exp
r = lstm_exp.execute(lstm_exp.compose("tracking.enabled=false", "model=stacked", *sys.argv[1:]))
print(json.dumps({"build_s": r.timings["build_s"], "forward_s": r.timings["forward_s"],
                  "engine": r.engine_label}))
"""


def run_child(env: dict, overrides: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *overrides], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, cwd=REPO, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every variant")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from lstm_exp.compute.native import cpu
    from lstm_exp.compute.native.build import LIBRARY
    from lstm_exp.compute.native.cache import RECORD, cache_root
    from lstm_exp.compute.native.engine import load

    built = load().build.path.parent  # this user's cache: compiled here once if need be
    print(f"CPU: {cpu.describe()}; native build {load().build.isa}; load average {os.getloadavg()[0]:.1f}")
    samples: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            fresh = Path(tmp) / f"round{r}"
            folder = fresh / cache_root().relative_to(cache_root().parents[1]) / built.name
            folder.mkdir(parents=True)
            for name in (LIBRARY, RECORD):
                shutil.copy2(built / name, folder / name)
            env = {"XDG_CACHE_HOME": str(fresh)}
            variants = [("auto, first use", env, []), ("auto, kept", env, []),
                        ("native", env, ["model.implementation=native"]),
                        ("keras", env, ["model.implementation=keras"])]
            for name, variant_env, extra in variants:
                samples.setdefault(name, []).append(run_child(variant_env, [*extra, *args.overrides]))
    print(f"tutorial (model=stacked) {' '.join(args.overrides)}; {args.rounds} rounds; "
          f"load average after {os.getloadavg()[0]:.1f}")
    print("| variant | build_s ms | forward_s ms | engine (last round) |\n|---|---|---|---|")
    for name, runs in samples.items():
        build = statistics.median(s["build_s"] for s in runs) * 1e3
        forward = statistics.median(s["forward_s"] for s in runs) * 1e3
        print(f"| {name} | {build:.0f} | {forward:.1f} | {runs[-1]['engine']} |")


if __name__ == "__main__":
    main()
