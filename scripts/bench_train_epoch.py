"""One training epoch of the README's worked comparison (`adding`, LSTM [32]) against PyTorch.

The sizes are the worked comparison's (`conf/task/adding.yaml`: T=20, 2000 training and 500
validation sequences, batch 64, Adam at 0.01). Contenders, all from the same starting weights and
readout, on the same data in the same seeded batch order, each epoch ending with a validation pass:
  keras / native / auto   lstm_exp's `trainer.Trainer.run_epoch` with `model.implementation` set so
                          (`auto` measures or keeps its choice when its Trainer is built; its label
                          says which engine it runs);
  torch                   `nn.LSTM` + `nn.Linear` (reading the final state) + `torch.optim.Adam`, a
                          validation pass under `no_grad`, `torch.set_num_threads` = TensorFlow's
                          intra-op threads; `torch_1thread` the same on one thread.
Each contender's turn opens with one untimed epoch (PyTorch's OpenMP threads spin-wait after their
work, which slows whoever runs next), then one timed epoch; the order is shuffled every round so that
load from other processes hits all alike. Medians of wall and CPU ms (all threads of the process)
are reported with each one's time over PyTorch's, the CPU named, and each contender's last
(train, val) loss: all ran as many epochs from one start, so they agree (float32, Adam's order of
operations: ~1e-4 relative; tests/test_bench.py holds them to 1e-3) where the models are the same.
`--parts` also times, for lstm_exp, an epoch's training steps and its validation pass apart, and the
bare compiled step on a fixed batch.

    .venv/bin/python scripts/bench_train_epoch.py [--smoke] [--rounds N] [--parts] [--json out.json]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_order import interleaved  # noqa: E402

SIZES = {"full": dict(timesteps=20, train_size=2000, val_size=500, batch_size=64, units=32),
         "smoke": dict(timesteps=5, train_size=96, val_size=32, batch_size=32, units=4)}
RATE = 0.01
SHUFFLE_STREAM = 5  # trainer.py's batch-order stream: torch walks the batches in the same order


def lstm_exp_contender(task, units: int, weights: dict, engine: str):
    """lstm_exp's epoch: (its Trainer, a call running one epoch)."""
    from lstm_exp.compute.trainer import Trainer
    from lstm_exp.config.specs import ModelSpec

    trainer = Trainer(task, ModelSpec("lstm", (units,), implementation=engine), weights, seed=0)
    epochs = iter(range(1, 1_000_000))
    return trainer, lambda: trainer.run_epoch(next(epochs))


def torch_contender(data, weights: dict, readout: dict, batch_size: int, threads: int):
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    lstm = torch.nn.LSTM(weights["layer_0/kernel"].shape[0], weights["layer_0/recurrent_kernel"].shape[0],
                         batch_first=True)
    linear = torch.nn.Linear(*readout["readout/kernel"].shape)
    with torch.no_grad():  # Keras' (F, 4H) i, f, g, o columns are PyTorch's (4H, F) rows in the same order
        lstm.weight_ih_l0.copy_(torch.from_numpy(weights["layer_0/kernel"].T.copy()))
        lstm.weight_hh_l0.copy_(torch.from_numpy(weights["layer_0/recurrent_kernel"].T.copy()))
        lstm.bias_ih_l0.copy_(torch.from_numpy(weights["layer_0/bias"]))
        lstm.bias_hh_l0.zero_()
        linear.weight.copy_(torch.from_numpy(readout["readout/kernel"].T.copy()))
        linear.bias.copy_(torch.from_numpy(readout["readout/bias"]))
    lstm.bias_hh_l0.requires_grad_(False)  # Keras has one bias: a second trained one would be another model
    params = [p for p in [*lstm.parameters(), *linear.parameters()] if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=RATE, eps=1e-7)  # Keras' epsilon
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_val, y_val = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    epochs = iter(range(1, 1_000_000))

    def predict(x):
        return linear(lstm(x)[1][0][-1])  # the final state h, as lstm_exp's readout reads it for adding

    def epoch():
        torch.set_num_threads(threads)
        order = np.random.default_rng([0, SHUFFLE_STREAM, next(epochs)]).permutation(len(x))
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(order[start : start + batch_size])
            optimizer.zero_grad()
            loss = torch.mean((predict(x[batch]) - y[batch]) ** 2)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        with torch.no_grad():
            val = float(torch.mean((predict(x_val) - y_val) ** 2))
        return total / len(x), val

    return epoch


def parts(trainer, rounds: int) -> dict:
    """Where one of lstm_exp's epochs goes: its training steps, its validation pass, the bare step."""
    import tensorflow as tf

    data, size = trainer.data, trainer.task.batch_size
    x, y = tf.constant(data.x_train[:size]), tf.constant(data.y_train[:size])
    steps = -(-len(data.x_train) // size)

    def train_steps():  # run_epoch less its validation pass
        for start in range(0, len(data.x_train), size):
            float(trainer._train_step(data.x_train[start : start + size], data.y_train[start : start + size]))

    runs = {"train steps": train_steps,
            "validation pass": lambda: trainer.evaluate(data.x_val, data.y_val),
            f"{steps} x bare step (fixed batch)": lambda: [float(trainer._train_step(x, y))
                                                           for _ in range(steps)]}
    return interleaved(runs, rounds)[0]


def bench(smoke: bool, rounds: int, with_parts: bool) -> dict:
    from omegaconf import OmegaConf

    from lstm_exp.compute import tasks
    from lstm_exp.compute.initializers import initial_weights
    from lstm_exp.compute.trainer import readout_weights
    from lstm_exp.config.specs import ModelSpec
    from lstm_exp.config.task_schema import TaskConfig

    size = SIZES["smoke" if smoke else "full"]
    task = OmegaConf.structured(TaskConfig(name="adding", epochs=1, learning_rate=RATE,
                                           **{k: size[k] for k in ("timesteps", "train_size", "val_size",
                                                                   "batch_size")}))
    weights = initial_weights(ModelSpec("lstm", (size["units"],)), tasks.features(task), seed=0)
    import tensorflow as tf

    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    runs, labels, trainers = {}, {}, {}
    for engine in ("keras", "native", "auto"):
        trainer, runs[engine] = lstm_exp_contender(task, size["units"], weights, engine)
        trainers[engine], labels[engine] = trainer, f"{trainer.engine} ({trainer.engine_why})"
    data = trainers["keras"].data
    readout = readout_weights(size["units"], data.outputs, 0)
    runs["torch"] = torch_contender(data, weights, readout, size["batch_size"], threads)
    if threads > 1:  # nn.LSTM's threads meet at every step: on shared cores one thread shows it without that
        runs["torch_1thread"] = torch_contender(data, weights, readout, size["batch_size"], 1)
    last = {}  # each contender's latest (train_loss, val_loss): all run as many epochs, from one start

    def keeping(name, run):
        return lambda: last.__setitem__(name, run())

    runs = {name: keeping(name, run) for name, run in runs.items()}
    first = {}
    for name, run in runs.items():  # tracing, first-call costs
        start = time.perf_counter()
        run()
        first[name] = (time.perf_counter() - start) * 1e3
    wall, cpu = interleaved(runs, rounds)
    result = {"size": size, "threads": threads, "rounds": rounds, "engines": labels, "first_epoch_ms": first,
              "wall_ms": wall, "cpu_ms": cpu, "vs_torch": {n: w / wall["torch"] for n, w in wall.items()},
              "last_losses": last}
    if with_parts:
        result["parts_ms"] = {engine: parts(trainers[engine], rounds) for engine in ("keras", "native")}
    return result


def table(result: dict) -> str:
    wall, cpu = result["wall_ms"], result["cpu_ms"]
    one = "torch_1thread" if "torch_1thread" in wall else "torch"
    lines = ["| contender | wall ms | CPU ms | wall / torch | CPU / torch | CPU / torch 1 thread |",
             "|---|---|---|---|---|---|"]
    for name in wall:
        lines.append(f"| {name} | {wall[name]:.0f} | {cpu[name]:.0f} | {wall[name] / wall['torch']:.2f} | "
                     f"{cpu[name] / cpu['torch']:.2f} | {cpu[name] / cpu[one]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, two rounds: checks it runs")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--parts", action="store_true", help="also where lstm_exp's epoch goes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from lstm_exp.compute.native import cpu
    from lstm_exp.compute.tf_runtime import quiet_native_stderr

    with quiet_native_stderr():
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")
        print(f"CPU: {cpu.describe()}; load average {os.getloadavg()[0]:.1f}", flush=True)
        result = bench(args.smoke, 2 if args.smoke else args.rounds, args.parts)
    s = result["size"]
    print(f"adding T={s['timesteps']}, train {s['train_size']}, val {s['val_size']}, "
          f"batch {s['batch_size']}, "
          f"LSTM [{s['units']}]; {result['threads']} threads; {result['rounds']} rounds; "
          f"load average after {os.getloadavg()[0]:.1f}")
    for engine, label in result["engines"].items():
        print(f"  {engine}: {label}")
    print(table(result))
    for engine, times in result.get("parts_ms", {}).items():
        print(f"  {engine}: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in times.items()))
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu.describe(), **result}, indent=2))


if __name__ == "__main__":
    main()
