"""One training epoch through lstm_exp's `trainer.Trainer` vs the same Keras model trained by hand.

Both sides get the same data (the `adding` task), the same starting weights, Adam at the same rate
and a validation pass per epoch; the plain side is `keras.Sequential([LSTM, Dense]).fit(epochs=1)`.
After one warm-up epoch each (tracing), rounds alternate which side goes first, so that load from
other processes on shared cores hits both alike; medians are reported. Target: ratio <= 1.1.

    .venv/bin/python scripts/bench_train.py [--smoke] [--json bench_train.json]
    (or from scripts/bench.py: `from bench_train import bench_train`)
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 1.1
SIZES = {"full": dict(timesteps=50, train_size=2000, val_size=500, batch_size=64, units=64, rounds=7),
         "smoke": dict(timesteps=10, train_size=128, val_size=32, batch_size=32, units=8, rounds=2)}


def _plain_model(keras, weights, readout, steps, features, units, rate):
    layers = [keras.Input((steps, features)), keras.layers.LSTM(units), keras.layers.Dense(1)]
    model = keras.Sequential(layers)
    model.layers[0].set_weights([weights["layer_0/kernel"], weights["layer_0/recurrent_kernel"],
                                 weights["layer_0/bias"]])
    model.layers[1].set_weights([readout["readout/kernel"], readout["readout/bias"]])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=rate), loss="mse")
    return model


def bench_train(smoke: bool) -> dict:
    """Median seconds of one epoch (training and validation) on each side, and their ratio."""
    from omegaconf import OmegaConf

    from lstm_exp.compute import tasks
    from lstm_exp.compute.initializers import initial_weights
    from lstm_exp.compute.tf_runtime import quiet_native_stderr
    from lstm_exp.compute.trainer import Trainer, readout_weights
    from lstm_exp.config.specs import ModelSpec
    from lstm_exp.config.task_schema import TaskConfig

    size = SIZES["smoke" if smoke else "full"]
    task = OmegaConf.structured(TaskConfig(name="adding", epochs=1, learning_rate=0.01,
                                           **{k: size[k] for k in ("timesteps", "train_size", "val_size",
                                                                   "batch_size")}))
    spec = ModelSpec("lstm", (size["units"],))
    weights = initial_weights(spec, tasks.features(task), seed=0)
    with quiet_native_stderr():
        import keras

        trainer = Trainer(task, spec, weights, seed=0)
    data = trainer.data
    plain = _plain_model(keras, weights, readout_weights(size["units"], 1, 0), task.timesteps,
                         tasks.features(task), size["units"], task.learning_rate)

    def ours(epoch):
        trainer.run_epoch(epoch)

    def by_hand(epoch):
        plain.fit(data.x_train, data.y_train, batch_size=task.batch_size, epochs=1, verbose=0,
                  validation_data=(data.x_val, data.y_val))

    contenders = {"lstm_exp": ours, "plain_keras": by_hand}
    first = {}
    for name, run in contenders.items():  # warm-up: tracing and first-call costs
        start = time.perf_counter()
        run(0)
        first[name] = time.perf_counter() - start
    samples = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(size["rounds"]):
        for name in names[r % 2 :] + names[: r % 2]:
            start = time.perf_counter()
            contenders[name](r + 1)
            samples[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(s) for name, s in samples.items()}
    # fit(epochs=1) pays its set-up (data adapter, callbacks) every epoch; one fit over all the rounds
    # pays it once: its mean epoch is the plain side at its best.
    start = time.perf_counter()
    plain.fit(data.x_train, data.y_train, batch_size=task.batch_size, epochs=size["rounds"], verbose=0,
              validation_data=(data.x_val, data.y_val))
    medians["plain_keras_one_fit"] = (time.perf_counter() - start) / size["rounds"]
    return {"size": size, "first_epoch_s": first, "epoch_s": medians, "samples_s": samples,
            "ratio": medians["lstm_exp"] / medians["plain_keras"],
            "ratio_vs_one_fit": medians["lstm_exp"] / medians["plain_keras_one_fit"], "target": TARGET}


def summary(result: dict) -> str:
    s, e = result["size"], result["epoch_s"]
    return (f"training epoch (adding T={s['timesteps']}, {s['train_size']} sequences, "
            f"batch {s['batch_size']}, LSTM [{s['units']}]): lstm_exp {e['lstm_exp']:.3f} s / "
            f"plain Keras fit {e['plain_keras']:.3f} s"
            f" = {result['ratio']:.2f} (target <= {result['target']}); vs one fit over all epochs "
            f"{e['plain_keras_one_fit']:.3f} s = {result['ratio_vs_one_fit']:.2f}; first epoch "
            f"{result['first_epoch_s']['lstm_exp']:.2f} s / {result['first_epoch_s']['plain_keras']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, two rounds: checks it runs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    from lstm_exp.compute.native import cpu

    print(f"CPU: {cpu.describe()}")
    result = {**bench_train(args.smoke), "cpu": cpu.describe()}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(summary(result))


if __name__ == "__main__":
    main()
