"""Side-by-side CPU forward pass of a GRU stack: the native op vs stock Keras vs PyTorch `nn.GRU`.

Contenders, all from the same weights on the same batch, each returning the top layer's sequence:
  keras   lstm_exp's `KerasStack` (stock `keras.layers.GRU`) under `tf.function`;
  native  `NativeGRUStack` (the input projection as one MatMul, the native op for the recurrence)
          under `tf.function`: what `model.implementation=native` runs for a timed GRU forward;
  torch   PyTorch `nn.GRU` (reset_after, gate order r, z, n and both biases mapped) under
          `no_grad`, `torch.set_num_threads` equal to TensorFlow's intra-op threads, and on one.
Before timing, every contender's output must agree with stock Keras' within 1e-5 (float32): they
compute one model. Each round gives every contender an untimed then a timed call, in a shuffled
order; medians of wall and CPU (all threads of the process) ms are reported, the CPU named. On few
cores, run it with OMP_WAIT_POLICY=PASSIVE (see bench_train_step.py).

    .venv/bin/python scripts/bench_forward_gru.py [--smoke] [--only reference|large] [--rounds N]
        [--json out.json]
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_order import interleaved  # noqa: E402
from bench_train_step import SIZES, SMOKE, torch_gru_order  # noqa: E402

AGREEMENT = 1e-5


def tf_contenders(weights: dict, units: list, x):
    import tensorflow as tf

    from lstm_exp.compute.keras_stack import KerasStack
    from lstm_exp.compute.native.gru_engine import NativeGRUStack
    from lstm_exp.config.specs import ModelSpec

    x = tf.constant(x)
    keras_call = tf.function(KerasStack(ModelSpec("gru", tuple(units)), weights, x.shape[-1]).__call__)
    native_call = tf.function(NativeGRUStack(weights).__call__)
    top = f"layer_{len(units) - 1}/sequence"
    return {"keras": lambda: keras_call(x)[top].numpy(), "native": lambda: native_call(x)[top].numpy()}


def torch_contender(weights: dict, units: list, x, threads: int):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    layers = []
    for k, u in enumerate(units):
        kernel, recurrent, (bias_ih, bias_hh) = (torch_gru_order(weights[f"layer_{k}/{p}"])
                                                 for p in ("kernel", "recurrent_kernel", "bias"))
        m = torch.nn.GRU(kernel.shape[0], u, batch_first=True).eval()
        with torch.no_grad():
            m.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
            m.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
            m.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(bias_ih)))
            m.bias_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(bias_hh)))
        layers.append(m)
    x = torch.from_numpy(x)

    def run():
        torch.set_num_threads(threads)
        with torch.no_grad():
            h = x
            for m in layers:
                h = m(h)[0]
        return h.numpy()

    return run


def bench_size(b, t, f, units, rounds, threads):
    import numpy as np

    from lstm_exp.compute.initializers import initial_weights
    from lstm_exp.config.specs import ModelSpec

    weights = initial_weights(ModelSpec("gru", tuple(units)), f, seed=0)
    x = np.random.default_rng(0).standard_normal((b, t, f)).astype(np.float32)
    runs = {**tf_contenders(weights, units, x), "torch": torch_contender(weights, units, x, threads)}
    if threads > 1:
        runs["torch_1thread"] = torch_contender(weights, units, x, 1)
    first = {name: run() for name, run in runs.items()}  # tracing, first-call costs
    for name, out in first.items():
        err = float(np.abs(out - first["keras"]).max())
        if not err <= AGREEMENT:
            raise SystemExit(f"{name}'s output is {err:.2e} from stock Keras': the contenders do not "
                             "compute one model")
    medians, cpu = interleaved(runs, rounds)
    return {"shape": [b, t, f], "units": units, "rounds": rounds, "median_ms": medians, "cpu_ms": cpu,
            "vs_torch": {n: m / medians["torch"] for n, m in medians.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny size, two rounds: checks it runs")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=list(SIZES), help="one size")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from bench_train_step import table

    from lstm_exp.compute.native import cpu
    from lstm_exp.compute.tf_runtime import quiet_native_stderr

    with quiet_native_stderr():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"CPU: {cpu.describe()}; threads {threads}; load average {os.getloadavg()[0]:.1f}; "
          f"GRU forward; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    sizes = SMOKE if args.smoke else {k: v for k, v in SIZES.items() if args.only in (None, k)}
    results = {}
    for name, (b, t, f, units) in sizes.items():
        with quiet_native_stderr():
            results[name] = bench_size(b, t, f, units, 2 if args.smoke else args.rounds, threads)
        print("\n".join(table({name: results[name]}).splitlines()[2:]), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu.describe(), "threads": threads, **results}, indent=2))


if __name__ == "__main__":
    main()
