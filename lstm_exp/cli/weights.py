"""Exporting a recorded run's weights in another layout.

    python -m lstm_exp.weights export RUN_ID --layout torch|tf1|keras [--out PATH] [--tracking-uri URI]
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from lstm_exp.compute.layouts import to_layout
from lstm_exp.compute.weights import check_weights, read_npz
from lstm_exp.config.validate import validate_model
from lstm_exp.errors import ConfigError
from lstm_exp.record.runs import download_files, open_store


def export_run(
    run_id: str, layout: str, out: Path | None, tracking_uri: str | None, forget_bias: float | None
) -> Path:
    """Writes a recorded run's `weights.npz` in `layout`; returns the file written.

    `forget_bias` (tf1 only) defaults to the run's own `model.weights.forget_bias`, so exporting a
    run that imported tf1 weights gives back the file it read.
    """
    client, uri = open_store(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="lstm_exp_export_") as tmp:
        config_path, weights_path = download_files(client, run_id, ("config.yaml", "weights.npz"), tmp,
                                                   key="RUN_ID")
        cfg = OmegaConf.load(config_path)
        weights = read_npz(Path(weights_path), "RUN_ID")
    spec = validate_model(cfg.model)
    first = "layer_0/fw/kernel" if spec.bidirectional else "layer_0/kernel"
    features = int(np.shape(weights.get(first, np.zeros((0, 0))))[0])
    weights = check_weights(weights, spec, features, "RUN_ID", run_id)
    fb = cfg.model.weights.forget_bias if forget_bias is None else forget_bias
    arrays = to_layout(weights, spec, layout, fb)
    out = out or Path(f"weights_{layout}.npz")
    np.savez(out, **arrays)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m lstm_exp.weights export ...`; exit 2 with one line on a bad run or option."""
    parser = argparse.ArgumentParser(prog="python -m lstm_exp.weights", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write a recorded run's weights in another layout")
    export.add_argument("run_id", metavar="RUN_ID")
    export.add_argument("--layout", required=True, choices=("keras", "tf1", "torch"))
    export.add_argument("--out", type=Path, default=None, help="default: weights_<layout>.npz")
    export.add_argument("--tracking-uri", default=None, help="default: sqlite:///$PWD/mlflow.db")
    export.add_argument("--forget-bias", type=float, default=None,
                        help="tf1: TF1's forget bias (default: the run's model.weights.forget_bias)")
    args = parser.parse_args(argv)
    try:
        path = export_run(args.run_id, args.layout, args.out, args.tracking_uri, args.forget_bias)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {path} ({args.layout} layout)")


if __name__ == "__main__":
    main()
