"""Side-by-side CPU forward benchmark: native and fused LSTM stacks vs stock Keras vs PyTorch.

Every round gives each contender one turn, in a shuffled order (bench_order.py), so that load from
other processes on the shared cores hits all contenders alike; a turn is one
untimed call (it absorbs what the previous contender left running, such as
PyTorch's spinning OpenMP threads) and one timed call; medians are reported.
Build, trace and XLA compile happen in a warm-up before timing (their cost is
reported separately as ``first_call_s`` and in the ``startup`` section).

    python scripts/bench_forward.py --json bench_forward.json [--large] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_order import turns  # noqa: E402

from lstm_exp.compute import fused  # noqa: E402
from lstm_exp.compute.native import cpu  # noqa: E402
from lstm_exp.compute.native.engine import NativeLSTMStack, load  # noqa: E402

VARIANTS = (("wavefront", True), ("wavefront", False), ("layerwise", True), ("layerwise", False))
TUTORIAL = np.array([[[1, 2, 3, 4, 3, 2], [1, 2, 1, 1, 1, 2], [1, 2, 2, 2, 2, 2]],
                     [[1, 2, 3, 4, 3, 2], [3, 2, 2, 1, 1, 2], [0, 0, 0, 0, 3, 2]]], np.float32)


def stock_model(feats, units):
    """keras.layers.LSTM stack returning the top layer's sequence."""
    inp = keras.Input((None, feats))
    h = inp
    for u in units:
        h = keras.layers.LSTM(u, return_sequences=True)(h)
    return keras.Model(inp, h)


def weights_of(model):
    lstms = [lay for lay in model.layers if isinstance(lay, keras.layers.LSTM)]
    return {f"layer_{k}/{p}": w for k, lay in enumerate(lstms)
            for p, w in zip(("kernel", "recurrent_kernel", "bias"), lay.get_weights(), strict=True)}


def torch_contender(weights, units, threads):
    """nn.LSTM per layer with the keras weights (same gate order; W^T, b_ih=b, b_hh=0)."""
    try:
        import torch
    except ImportError:
        return None
    mods = []
    for k, u in enumerate(units):
        kern = weights[f"layer_{k}/kernel"]
        m = torch.nn.LSTM(kern.shape[0], u, batch_first=True).eval()
        with torch.no_grad():
            m.weight_ih_l0.copy_(torch.from_numpy(kern.T.copy()))
            m.weight_hh_l0.copy_(torch.from_numpy(weights[f"layer_{k}/recurrent_kernel"].T.copy()))
            m.bias_ih_l0.copy_(torch.from_numpy(weights[f"layer_{k}/bias"]))
            m.bias_hh_l0.zero_()
        mods.append(m)

    def run(x):
        torch.set_num_threads(threads)  # process-wide: each torch contender sets its own per call
        with torch.inference_mode():
            h = torch.from_numpy(x)
            for m in mods:
                h = m(h)[0]
            return h.numpy()
    return run


def contenders(weights, units, feats, with_torch, threads):
    model = stock_model(feats, units)
    model.set_weights([weights[f"layer_{k}/{p}"] for k in range(len(units))
                       for p in ("kernel", "recurrent_kernel", "bias")])
    top = f"layer_{len(units) - 1}/sequence"
    out = {"stock_tf_function": tf.function(model),
           "stock_xla": tf.function(model, jit_compile=True)}
    for schedule, jit in VARIANTS:
        layer = fused.FusedLSTMStack(units, schedule=schedule, jit_compile=jit, weights=weights)
        out[f"fused_{schedule}_{'xla' if jit else 'graph'}"] = tf.function(lambda x, lay=layer: lay(x)[top])
    # `native` is what runs: `auto` picks the thread split by measuring on its first call (kept
    # per CPU build and shape class); the fixed splits run beside it, to show what it chose from.
    for name, split in (("native", "auto"), ("native_rows", "rows"), ("native_columns", "columns")):
        native = NativeLSTMStack(weights, split=split)  # builds the op on first use (cached afterwards)
        out[name] = tf.function(lambda x, native=native: native(x)[top])
    runs = {name: (lambda x, f=f: f(tf.constant(x)).numpy()) for name, f in out.items()}
    if with_torch and (torch_run := torch_contender(weights, units, threads)) is not None:
        runs["torch"] = torch_run
        if threads > 1:
            # nn.LSTM meets its other threads at every step: on cores shared with other jobs a
            # descheduled partner stalls it, so one thread shows what torch does without that.
            runs["torch_1thread"] = torch_contender(weights, units, 1)
    return runs


def _cpu_s():
    """CPU seconds of this process, every thread: on shared cores, what a pass costs apart from
    how much of the cores the scheduler gave it (spin-waiting threads count too)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def bench_size(b, t, f, units, rounds, with_torch, threads, seed=0):
    rng = np.random.default_rng(seed)
    weights = weights_of(stock_model(f, units))
    x = rng.standard_normal((b, t, f)).astype(np.float32)
    runs = contenders(weights, units, f, with_torch, threads)
    first, ref = {}, None
    for name, run in runs.items():  # warm-up: build, trace, compile
        start = time.perf_counter()
        y = run(x)
        first[name] = time.perf_counter() - start
        ref = y if ref is None else ref
        err = float(np.abs(y - ref).max())
        assert err < 1e-4, f"{name} disagrees with stock by {err}"
        run(x)
    names, times, cpu = list(runs), {n: [] for n in runs}, {n: [] for n in runs}
    turn_first = {n: [] for n in runs}
    for _round, name in turns(names, rounds):
        # Each turn opens with one untimed call: PyTorch's OpenMP threads spin-wait for
        # milliseconds after a call returns, and that spin would otherwise be charged to
        # whichever contender runs next (native measured ~1.3x slower right after torch than
        # after itself). The opening call's time is kept as `turn_first_ms`.
        start = time.perf_counter()
        runs[name](x)
        turn_first[name].append((time.perf_counter() - start) * 1e3)
        cpu_start, start = _cpu_s(), time.perf_counter()
        runs[name](x)
        times[name].append((time.perf_counter() - start) * 1e3)
        cpu[name].append((_cpu_s() - cpu_start) * 1e3)
    flops, feats = 0, f
    for u in units:
        flops += 2 * b * t * (feats * 4 * u + u * 4 * u)
        feats = u
    med = {n: float(np.median(v)) for n, v in times.items()}
    rows = {n: {"median_ms": med[n], "p25_ms": float(np.percentile(times[n], 25)),
                "p75_ms": float(np.percentile(times[n], 75)), "min_ms": float(min(times[n])),
                "cpu_ms": float(np.median(cpu[n])),
                "turn_first_ms": float(np.median(turn_first[n])),
                "gflops": flops / med[n] / 1e6, "speedup_vs_stock": med["stock_tf_function"] / med[n],
                "speedup_vs_torch": med["torch"] / med[n] if "torch" in med else None,
                "first_call_s": first[n], **_paired_with_torch(times, n)} for n in names}
    return {"B": b, "T": t, "F": f, "units": list(units), "rounds": rounds, "flops": flops,
            "native_build": load().build.isa, "results": rows}


def _paired_with_torch(times, name):
    """Time / PyTorch's time within each round (the two ran back to back under the same load):
    the median ratio, its quartiles, and in how many rounds `name` was the faster. Where two
    contenders are level, the paired ratio settles what two medians taken apart cannot."""
    if "torch" not in times:
        return {}
    ratios = np.asarray(times[name]) / np.asarray(times["torch"])
    return {"paired_vs_torch": float(np.median(ratios)),
            "paired_vs_torch_p25": float(np.percentile(ratios, 25)),
            "paired_vs_torch_p75": float(np.percentile(ratios, 75)),
            "faster_than_torch_rounds": f"{int((ratios < 1).sum())}/{len(ratios)}"}


def startup(sizes, repeats=3):
    """First-call (build/trace/compile) vs steady cost: eager stock Keras vs each fused variant.

    ``break_even_calls`` is how many calls it takes the variant to pay back its first-call
    overhead against eager stock Keras (None: it never does at that size).
    """
    report = {}
    for b, t, f, units in sizes:
        x = TUTORIAL if (b, t, f) == TUTORIAL.shape else np.random.default_rng(1).standard_normal(
            (b, t, f)).astype(np.float32)
        weights, out = weights_of(stock_model(f, units)), {}
        for _ in range(repeats):
            start = time.perf_counter()  # eager stock: build + set weights + eager pass
            lstms, h = [], tf.constant(x)
            for k, u in enumerate(units):
                lstms.append(keras.layers.LSTM(u, return_sequences=True, return_state=True))
                lstms[-1].build(h.shape)
                lstms[-1].set_weights([weights[f"layer_{k}/{p}"]
                                       for p in ("kernel", "recurrent_kernel", "bias")])
                h = lstms[-1](h)[0]
            out.setdefault("stock_eager", []).append((time.perf_counter() - start, 0.0))
            start, h = time.perf_counter(), tf.constant(x)
            for lay in lstms:
                h = lay(h)[0]
            out["stock_eager"][-1] = (out["stock_eager"][-1][0], time.perf_counter() - start)
            times = []  # native as a single run uses it: eager, nothing to trace
            for _call in range(2):
                start = time.perf_counter()
                np.asarray(NativeLSTMStack(weights)(x)[f"layer_{len(units) - 1}/sequence"])
                times.append(time.perf_counter() - start)
            out.setdefault("native_eager", []).append(times)
            for schedule, jit in VARIANTS:
                fused._COMPILED.clear()  # force a fresh trace (and XLA compile)
                times = []
                for _call in range(2):
                    start = time.perf_counter()
                    fused.fused_forward(weights, x, schedule=schedule, jit_compile=jit)
                    times.append(time.perf_counter() - start)
                out.setdefault(f"fused_{schedule}_{'xla' if jit else 'graph'}", []).append(times)
        rows = {n: {"first_s": float(np.median([v[0] for v in vals])),
                    "steady_s": float(np.median([v[1] for v in vals]))} for n, vals in out.items()}
        base = rows["stock_eager"]
        for row in rows.values():
            gain = base["steady_s"] - row["steady_s"]
            extra = row["first_s"] - base["first_s"]
            row["break_even_calls"] = (1 if extra <= 0 else float(np.ceil(extra / gain)) + 1
                                       if gain > 0 else None)
        report[f"B{b}_T{t}_F{f}_units{'x'.join(map(str, units))}"] = {
            "B*T*sum(H)": b * t * sum(units), "results": rows}
    return report


def _paired_text(row):
    if "paired_vs_torch" not in row:
        return "-"
    return (f"{row['paired_vs_torch']:.3f} ({row['paired_vs_torch_p25']:.3f}-"
            f"{row['paired_vs_torch_p75']:.3f}), {row['faster_than_torch_rounds']}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write results here")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, few rounds (< 30 s)")
    ap.add_argument("--large", action="store_true", help="also B=64 T=256 F=128 units=[512,512]")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--intra-op", type=int, default=0, help="TF intra-op threads (0: TF default)")
    ap.add_argument("--inter-op", type=int, default=0, help="TF inter-op threads (0: TF default)")
    args = ap.parse_args(argv)
    # Process-wide and only settable before TensorFlow starts: the knob that decides whether
    # small matmuls split across cores (default) or layers run side by side (intra-op 1).
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.smoke:
        sizes, rounds = [(4, 16, 8, [16, 16])], args.rounds or 5
    else:
        sizes, rounds = [(32, 128, 64, [256, 256])], args.rounds or 30
        if args.large:
            sizes.append((64, 256, 128, [512, 512]))
    print(f"CPU: {cpu.describe()}")  # the native op is compiled for it: figures hold for it only
    report = {"host": platform.node(), "cpu": cpu.describe(), "cpus": os.cpu_count(), "tf": tf.__version__,
              "keras": keras.__version__, "intra_op": args.intra_op, "inter_op": args.inter_op,
              "load_avg_start": os.getloadavg(), "sizes": []}
    report["startup"] = startup(
        [TUTORIAL.shape + ([4, 5],)] if args.smoke else
        [TUTORIAL.shape + ([4, 5],), (8, 32, 16, [32, 32]), (16, 64, 32, [64, 64]),
         (32, 128, 64, [256, 256])], repeats=1 if args.smoke else 3)
    for b, t, f, units in sizes:
        res = bench_size(b, t, f, units, rounds if b * t < 10000 else max(5, rounds // 3),
                         not args.no_torch, args.threads)
        report["sizes"].append(res)
        print(f"\nB={b} T={t} F={f} units={units}  ({res['flops'] / 1e9:.2f} GFLOP/call, "
              f"{res['rounds']} rounds; native = native ({res['native_build']}))")
        print(f"{'contender':28s} {'median ms':>10s} {'p25':>8s} {'p75':>8s} {'GFLOP/s':>8s} "
              f"{'x stock':>8s} {'x torch':>8s} {'1st call s':>10s} {'cpu ms':>8s} "
              f"{'time/torch by round (p25-p75), rounds faster':>44s}")
        for name, r in res["results"].items():
            vt = f"{r['speedup_vs_torch']:8.2f}" if r["speedup_vs_torch"] else f"{'-':>8s}"
            print(f"{name:28s} {r['median_ms']:10.2f} {r['p25_ms']:8.2f} {r['p75_ms']:8.2f} "
                  f"{r['gflops']:8.1f} {r['speedup_vs_stock']:8.2f} {vt} {r['first_call_s']:10.2f} "
                  f"{r['cpu_ms']:8.2f} {_paired_text(r):>44s}")
    print("\nstartup: first call (build/trace/compile) and steady call, seconds; calls to break"
          " even against eager stock Keras")
    for size, res in report["startup"].items():
        print(f"  {size} (B*T*sum(H) = {res['B*T*sum(H)']})")
        for name, r in res["results"].items():
            print(f"    {name:24s} first {r['first_s']:7.3f}  steady {r['steady_s']:7.4f}  "
                  f"break-even {r['break_even_calls']}")
    report["load_avg_end"] = os.getloadavg()
    print(f"load average start {report['load_avg_start']} end {report['load_avg_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
