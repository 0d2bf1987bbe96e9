"""One training step (forward + backward + Adam) of an LSTM or GRU stack + Dense readout, side by side.

Contenders, all from the same starting weights (the readout's too) on the same batch (per-step MSE
readout):
  keras   lstm_exp's training step on stock Keras layers (`model.implementation=keras`);
  native  the same step with the native op and its backward through time (`=native`);
  torch   PyTorch `nn.LSTM` (or `nn.GRU`, `--cell gru`) + `nn.Linear` + `torch.optim.Adam`,
          `torch.set_num_threads` equal to TensorFlow's intra-op threads.
Before timing, every contender's first loss (the same weights, the same batch) must agree with
PyTorch's within 1e-4 relative: they compute one model. Each contender's turn opens with one
untimed step (PyTorch's OpenMP threads spin-wait after their work, which slows whoever runs next)
and then one timed step; the order is shuffled every round so that load from other processes hits all
alike. Medians are reported with each one's time over
PyTorch's, and the CPU is named.

    .venv/bin/python scripts/bench_train_step.py [--cell gru] [--smoke] [--rounds N] [--json out.json]

With `--cell gru` on few cores, run it with OMP_WAIT_POLICY=PASSIVE: PyTorch's GRU runs OpenMP
regions per step and its idle threads otherwise spin on the cores TensorFlow's pool needs next
(README, "Training GRU stacks with the native op").
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

SIZES = {"reference": (32, 128, 64, [256, 256]), "large": (64, 256, 128, [512, 512])}
SMOKE = {"smoke": (4, 8, 3, [8, 8])}
RATE = 1e-3
LOSS_RTOL = 1e-4  # first losses, float32 both sides (observed ~1e-7)


def tf_contender(cell: str, engine: str, weights: dict, readout_weights, units: list, x, y):
    """lstm_exp's step (training.py's, on a given batch): the stack, a Dense readout, Adam."""
    import keras
    import tensorflow as tf

    from lstm_exp.compute.keras_stack import KerasStack
    from lstm_exp.compute.native.trainable import NativeTrainableStack
    from lstm_exp.config.specs import ModelSpec

    stack = KerasStack(ModelSpec(cell, tuple(units)), weights, x.shape[-1])
    compute = NativeTrainableStack(stack.layers.values(), cell=cell) if engine == "native" else stack
    readout = keras.layers.Dense(1)
    readout.build((None, units[-1]))
    readout.set_weights(readout_weights)
    variables = [v for layer in stack.layers.values() for v in layer.trainable_weights]
    variables += readout.trainable_weights
    optimizer = keras.optimizers.Adam(learning_rate=RATE)
    optimizer.build(variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(readout(compute(x)["output"]) - y))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    x, y = tf.constant(x), tf.constant(y)
    return lambda: float(step(x, y))


def torch_gru_order(a):
    """Keras' GRU gate order z, r, h on the last axis -> PyTorch's r, z, n (both reset_after)."""
    import numpy as np

    z, r, h = np.split(a, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def torch_contender(cell: str, weights: dict, readout_weights, units: list, x, y, threads: int):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    layers = []
    for k, u in enumerate(units):
        kernel, recurrent, bias = (weights[f"layer_{k}/{p}"] for p in ("kernel", "recurrent_kernel", "bias"))
        if cell == "gru":  # bias (2, 3H): the input projection's, then the recurrent product's
            kernel, recurrent, bias = (torch_gru_order(a) for a in (kernel, recurrent, bias))
            bias_ih, bias_hh = bias
        else:
            bias_ih, bias_hh = bias, np.zeros_like(bias)
        m = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(kernel.shape[0], u, batch_first=True)
        with torch.no_grad():
            m.weight_ih_l0.copy_(torch.from_numpy(kernel.T.copy()))
            m.weight_hh_l0.copy_(torch.from_numpy(recurrent.T.copy()))
            m.bias_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(bias_ih)))
            m.bias_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(bias_hh)))
        layers.append(m)
    readout = torch.nn.Linear(units[-1], 1)
    with torch.no_grad():
        readout.weight.copy_(torch.from_numpy(readout_weights[0].T.copy()))
        readout.bias.copy_(torch.from_numpy(readout_weights[1]))
    params = [p for m in [*layers, readout] for p in m.parameters()]
    optimizer = torch.optim.Adam(params, lr=RATE)
    x, y = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        torch.set_num_threads(threads)
        optimizer.zero_grad()
        h = x
        for m in layers:
            h = m(h)[0]
        loss = torch.mean((readout(h) - y) ** 2)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def bench_size(cell, b, t, f, units, rounds, threads):
    import numpy as np

    from lstm_exp.compute.initializers import initial_weights
    from lstm_exp.config.specs import ModelSpec

    weights = initial_weights(ModelSpec(cell, tuple(units)), f, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((b, t, f)).astype(np.float32)
    y = rng.standard_normal((b, t, 1)).astype(np.float32)
    readout = [rng.uniform(-0.1, 0.1, (units[-1], 1)).astype(np.float32), np.zeros(1, np.float32)]
    runs = {"keras": tf_contender(cell, "keras", weights, readout, units, x, y),
            "native": tf_contender(cell, "native", weights, readout, units, x, y),
            "torch": torch_contender(cell, weights, readout, units, x, y, threads)}
    if threads > 1:  # nn.LSTM's threads meet at every step: on shared cores one thread shows it without that
        runs["torch_1thread"] = torch_contender(cell, weights, readout, units, x, y, 1)
    first = {name: run() for name, run in runs.items()}  # tracing, first-call costs; the same weights
    for name, loss in first.items():
        if abs(loss - first["torch"]) > LOSS_RTOL * abs(first["torch"]):
            raise SystemExit(f"{name}'s first loss {loss!r} is not PyTorch's {first['torch']!r}: "
                             "the contenders do not compute one model")
    medians, cpu = interleaved(runs, rounds)
    return {"cell": cell, "shape": [b, t, f], "units": units, "rounds": rounds, "first_loss": first,
            "median_ms": medians,
            "cpu_ms": cpu, "vs_torch": {n: m / medians["torch"] for n, m in medians.items()}}


def table(results: dict) -> str:
    """Per size and contender: median wall ms, median CPU ms (all threads), and both over PyTorch's."""
    lines = ["| size | contender | wall ms | CPU ms | wall / torch | wall / torch 1 thread "
             "| CPU / torch 1 thread |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        m, c = r["median_ms"], r["cpu_ms"]
        b, t, f = r["shape"]
        one = "torch_1thread" if "torch_1thread" in m else "torch"
        for contender in m:
            lines.append(f"| {name} B{b} T{t} F{f} {r['units']} | {contender} | {m[contender]:.0f} | "
                         f"{c[contender]:.0f} | {m[contender] / m['torch']:.2f} | "
                         f"{m[contender] / m[one]:.2f} | {c[contender] / c[one]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--smoke", action="store_true", help="a tiny size, two rounds: checks it runs")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", choices=list(SIZES), help="one size")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from lstm_exp.compute.native import cpu
    from lstm_exp.compute.tf_runtime import quiet_native_stderr

    with quiet_native_stderr():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"CPU: {cpu.describe()}; threads {threads}; load average {os.getloadavg()[0]:.1f}; "
          f"cell {args.cell}")
    sizes = SMOKE if args.smoke else {k: v for k, v in SIZES.items() if args.only in (None, k)}
    results = {}
    for name, (b, t, f, units) in sizes.items():
        rounds = 2 if args.smoke else args.rounds
        with quiet_native_stderr():
            results[name] = bench_size(args.cell, b, t, f, units,
                                       rounds if name != "large" else max(3, rounds // 2), threads)
        print("\n".join(table({name: results[name]}).splitlines()[2:]), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu.describe(), "threads": threads, "cell": args.cell,
                                         **results}, indent=2))


if __name__ == "__main__":
    main()
