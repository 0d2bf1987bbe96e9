"""Writes a small example data set for `task=file`: noisy sines to continue, or a symbol task.

    .venv/bin/python scripts/make_example_npz.py sine.npz              # regression, y (N, T, 1) per step
    .venv/bin/python scripts/make_example_npz.py symbols.npz --kind symbols   # classes, y (N,) last step
    .venv/bin/python -m lstm_exp.run model=stacked task=file task.path=sine.npz task.patience=3 \
        task.schedule=cosine

- `sine`: x (N, T, 1) is a sine of random frequency and phase plus Gaussian noise (sigma 0.1); y is
  the next clean value at every step. float y, so MSE; no x_val, so task.val_fraction is held out.
- `symbols`: x (N, T, K) one-hot symbols; y (N,) is the symbol seen most often (ties: the smallest).
  integer y, so cross-entropy; `lengths` (N,) vary from T/2 to T, the steps after a row's length are
  padding (random symbols that must not count); x_val/y_val/lengths_val hold a separate split.
"""

import argparse

import numpy as np


def noisy_sine(rng, rows: int, steps: int) -> dict[str, np.ndarray]:
    freq = rng.uniform(0.02, 0.08, (rows, 1))
    phase = rng.uniform(0, 2 * np.pi, (rows, 1))
    clean = np.sin(2 * np.pi * freq * np.arange(steps + 1)[None, :] + phase)  # (N, T + 1)
    x = clean[:, :-1] + rng.normal(0, 0.1, (rows, steps))
    return {"x": x[..., None].astype(np.float32), "y": clean[:, 1:, None].astype(np.float32)}


def symbols(rng, rows: int, steps: int, kinds: int = 4) -> dict[str, np.ndarray]:
    codes = rng.integers(0, kinds, (rows, steps))
    lengths = rng.integers(steps // 2, steps + 1, rows)
    valid = np.arange(steps)[None, :] < lengths[:, None]
    counts = np.stack([((codes == k) & valid).sum(axis=1) for k in range(kinds)], axis=1)  # (N, K)
    return {"x": np.eye(kinds, dtype=np.float32)[codes], "y": counts.argmax(axis=1).astype(np.int64),
            "lengths": lengths.astype(np.int64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the .npz to write")
    parser.add_argument("--kind", choices=("sine", "symbols"), default="sine")
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.kind == "sine":
        arrays = noisy_sine(rng, args.rows, args.steps)
    else:
        train, val = symbols(rng, args.rows, args.steps), symbols(rng, max(1, args.rows // 4), args.steps)
        arrays = {**train, **{f"{name}_val": value for name, value in val.items()}}
    np.savez(args.path, **arrays)
    shapes = ", ".join(f"{name} {value.shape} {value.dtype}" for name, value in arrays.items())
    print(f"wrote {args.path}: {shapes}")


if __name__ == "__main__":
    main()
