"""lstm_exp's performance targets, measured side by side in one run (contenders alternate).

Sections (each prints medians and ratios; all land in one JSON):
  forward  native and fused vs stock Keras in a tf.function (and XLA) vs PyTorch nn.LSTM, with GFLOP/s,
           each one's time over PyTorch's, and the fraction of this machine's float32 matmul peak;
  start    whole-process `python -m lstm_exp.run model=stacked` vs the plain Keras script: wall, peak RSS;
  sweep    per-job cost of a `-m` sweep of N tutorial jobs vs a plain loop that tracks N runs alike,
           as (t_N - t_1) / (N - 1) so that process start-up cancels out.

    scripts/bench [--json bench.json] [--smoke]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench_order import turns  # noqa: E402

PYTHON = sys.executable
FORWARD_SIZES = {"stack": (32, 128, 64, [256, 256]), "large": (64, 256, 128, [512, 512])}
TARGETS = {"fused_vs_stock": 2.0, "fused_vs_torch": 1.0, "start_wall": 1.25, "start_rss": 1.2,
           "sweep_per_job": 1.5}
# The native engine's time over PyTorch's, at most, per forward size.
NATIVE_VS_TORCH = {"stack": 1.0, "large": 1.0}


def matmul_peak_gflops(size: int, rounds: int) -> float:
    """Float32 GFLOP/s of TensorFlow's largest square matrix product here: the forward's ceiling."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    product = tf.function(lambda m: tf.matmul(m, m))
    product(a).numpy()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        product(a).numpy()
        samples.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(samples) / 1e9


def forward(smoke: bool) -> dict:
    from lstm_exp.compute.tf_runtime import quiet_native_stderr

    with quiet_native_stderr():
        import bench_forward
        import tensorflow as tf

    # Each contender is traced once per shape on purpose; TensorFlow's retracing notice is noise here.
    tf.get_logger().setLevel("ERROR")

    sizes = {"stack": (4, 16, 8, [16, 16])} if smoke else FORWARD_SIZES
    rounds = 5 if smoke else 30
    peak = matmul_peak_gflops(256 if smoke else 2048, 5 if smoke else 20)
    out = {"matmul_peak_gflops": peak}
    for name, (b, t, f, units) in sizes.items():
        result = bench_forward.bench_size(b, t, f, units, rounds if name == "stack" else rounds // 3,
                                          with_torch=True, threads=2)
        torch_ms = result["results"]["torch"]["median_ms"]
        for row in result["results"].values():
            row["fraction_of_peak"] = row["gflops"] / peak
            row["time_vs_torch"] = row["median_ms"] / torch_ms
        out[name] = result
    return out


def _process(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one whole process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def _alternate(contenders: dict[str, list[str]], rounds: int, cwd: Path) -> dict[str, dict]:
    samples = {name: [] for name in contenders}
    names = list(contenders)
    for _round, name in turns(names, rounds):
        samples[name].append(_process(contenders[name], cwd))
    return {name: {"wall_s": statistics.median(w for w, _ in s), "peak_rss_mib": max(m for _, m in s),
                   "walls": [w for w, _ in s]} for name, s in samples.items()}


def start(smoke: bool, cwd: Path) -> dict:
    app = [PYTHON, "-m", "lstm_exp.run", "model=stacked"]
    _process(app, cwd)  # the store exists afterwards: later starts must not migrate it again
    plain = [PYTHON, str(ROOT / "scripts" / "plain_keras_tutorial.py")]
    result = _alternate({"lstm_exp": app, "plain_keras": plain}, 1 if smoke else 5, cwd)
    result["wall_ratio"] = result["lstm_exp"]["wall_s"] / result["plain_keras"]["wall_s"]
    result["rss_ratio"] = result["lstm_exp"]["peak_rss_mib"] / result["plain_keras"]["peak_rss_mib"]
    return result


def sweep(smoke: bool, cwd: Path) -> dict:
    jobs = 3 if smoke else 24
    app = [PYTHON, "-m", "lstm_exp.run", "-m", "model=stacked"]
    # What a user writes instead: one process, a loop that logs the same things to a SQLite store.
    plain = [PYTHON, str(ROOT / "scripts" / "plain_tracked_loop.py")]
    result = _alternate({"sweep_1": [*app, "seed=0"], f"sweep_{jobs}": [*app, f"seed=range(0,{jobs})"],
                         "plain_1": [*plain, "1"], f"plain_{jobs}": [*plain, str(jobs)]},
                        1 if smoke else 3, cwd)
    per_job = {kind: (result[f"{kind}_{jobs}"]["wall_s"] - result[f"{kind}_1"]["wall_s"]) / (jobs - 1)
               for kind in ("sweep", "plain")}
    return {"jobs": jobs, "runs": result, "per_job_s": per_job,
            "per_job_ratio": per_job["sweep"] / per_job["plain"]}


def train(smoke: bool) -> dict:
    """One training epoch through lstm_exp vs the same Keras model trained by hand (bench_train.py)."""
    import bench_train

    return bench_train.bench_train(smoke)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("bench.json"), help="where the results go")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks it runs")
    parser.add_argument("--only", choices=("forward", "start", "sweep", "train"), action="append")
    args = parser.parse_args()
    # Process sections first: a child forked from a parent that already holds TensorFlow starts with
    # the parent's resident pages, which would inflate every peak RSS measured after that.
    sections = args.only or ["start", "sweep", "forward", "train"]
    from lstm_exp.compute.native import cpu

    # The native op is compiled for this CPU, and every figure depends on it: each run names it.
    results, started = {"smoke": args.smoke, "cpu": cpu.describe()}, time.perf_counter()
    print(f"CPU: {results['cpu']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lstm_exp_bench_") as tmp:
        for section in sections:
            print(f"[{time.perf_counter() - started:6.1f} s] {section} ...", flush=True)
            results[section] = {"forward": forward, "start": lambda s: start(s, Path(tmp)),
                                "sweep": lambda s: sweep(s, Path(tmp)), "train": train}[section](args.smoke)
    results["total_s"] = time.perf_counter() - started
    args.json.write_text(json.dumps(results, indent=2))
    print(summary(results))
    print(f"results: {args.json}")


def summary(results: dict) -> str:
    lines = [f"CPU: {results['cpu']}"]
    if "forward" in results:
        fw = results["forward"]
        lines.append(f"matmul peak: {fw['matmul_peak_gflops']:.0f} GFLOP/s")
        for size in ("stack", "large"):
            if size not in fw:
                continue
            rows = fw[size]["results"]
            lines.append(f"forward B={fw[size]['B']} T={fw[size]['T']} F={fw[size]['F']} "
                         f"units={fw[size]['units']}, native = native ({fw[size]['native_build']}) "
                         "(median ms, GFLOP/s, % of peak, time / torch's, CPU ms per pass):")
            for name, row in sorted(rows.items(), key=lambda kv: kv[1]["median_ms"]):
                lines.append(f"  {name:<24} {row['median_ms']:8.2f} ms {row['gflops']:7.1f} "
                             f"{100 * row['fraction_of_peak']:5.1f}%  "
                             f"{row['time_vs_torch']:5.2f} x torch  x{row['speedup_vs_stock']:.2f} vs stock  "
                             f"cpu {row['cpu_ms']:8.2f} ms  first of turn {row['turn_first_ms']:8.2f} ms")
            one = rows.get("torch_1thread")
            lines.append(f"  native time / torch time: {rows['native']['time_vs_torch']:.2f} "
                         f"(target <= {NATIVE_VS_TORCH[size]})"
                         + (f"; / torch_1thread time: {rows['native']['median_ms'] / one['median_ms']:.2f}"
                            if one else ""))
            best = min((r for n, r in rows.items() if n.startswith("fused")), key=lambda r: r["median_ms"])
            lines.append(f"  best fused vs stock tf.function: x{best['speedup_vs_stock']:.2f} "
                         f"(target >= {TARGETS['fused_vs_stock']})"
                         + (f"; time vs torch: {rows['torch']['median_ms'] / best['median_ms']:.2f}"
                            if "torch" in rows else ""))
    if "start" in results:
        st = results["start"]
        lines.append(f"cold start: lstm_exp {st['lstm_exp']['wall_s']:.2f} s / plain Keras "
                     f"{st['plain_keras']['wall_s']:.2f} s = {st['wall_ratio']:.2f} (target <= "
                     f"{TARGETS['start_wall']}); peak RSS {st['lstm_exp']['peak_rss_mib']:.0f} / "
                     f"{st['plain_keras']['peak_rss_mib']:.0f} MiB = {st['rss_ratio']:.2f} "
                     f"(target <= {TARGETS['start_rss']})")
    if "sweep" in results:
        sw = results["sweep"]
        lines.append(f"sweep of {sw['jobs']}: {sw['per_job_s']['sweep']:.3f} s per job / plain tracked loop "
                     f"{sw['per_job_s']['plain']:.3f} s per run = {sw['per_job_ratio']:.2f} "
                     f"(target <= {TARGETS['sweep_per_job']})")
    if "train" in results:
        import bench_train

        lines.append(bench_train.summary(results["train"]))
    lines.append(f"total: {results['total_s']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
