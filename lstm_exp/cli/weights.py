"""Exporting a recorded run's weights in another layout.

    python -m lstm_exp.weights export RUN_ID --layout torch|tf1|keras [--out PATH.npz] [--tracking-uri URI]

RUN_ID is a run's id or a unique prefix of it, as for `rerun` and `compare`.
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from lstm_exp.cli.options import OneLineParser, exit_2_on_bad_input, finite_number, output_file, store_uri
from lstm_exp.compute.layouts import to_layout
from lstm_exp.compute.weights import check_weights, read_npz
from lstm_exp.config import names
from lstm_exp.config.validate import FLOAT32_MAX, validate_model
from lstm_exp.errors import ConfigError
from lstm_exp.record.runs import download_files, find_run, open_store


def export_run(
    run_ref: str, layout: str, out: Path | None, tracking_uri: str | None, forget_bias: float | None
) -> Path:
    """Writes a recorded run's `weights.npz` in `layout`; returns the file written.

    `run_ref` is the run's id or a unique prefix of it; `out` must end in `.npz` (`np.savez` would
    append it to any other name, and the path returned would not be the file written).

    `forget_bias` (tf1 only) defaults to the run's own `model.weights.forget_bias`, so exporting a
    run that imported tf1 weights gives back the file it read.
    """
    with open_store(tracking_uri) as (client, _), \
            tempfile.TemporaryDirectory(prefix="lstm_exp_export_") as tmp:
        run_id = find_run(client, run_ref, key="RUN_ID").info.run_id
        config_path, weights_path = download_files(client, run_id, ("config.yaml", "weights.npz"), tmp,
                                                   key="RUN_ID")
        cfg = OmegaConf.load(config_path)
        weights = read_npz(Path(weights_path), "RUN_ID")
    spec = validate_model(cfg.model)
    first = names.array_name(0, "kernel", spec.directions[0])
    features = int(np.shape(weights.get(first, np.zeros((0, 0))))[0])
    weights = check_weights(weights, spec, features, "RUN_ID", run_id)
    fb = cfg.model.weights.forget_bias if forget_bias is None else forget_bias
    arrays = to_layout(weights, spec, layout, fb)
    out = out or Path(f"weights_{layout}.npz")
    _write_npz(out, arrays)
    return out


def _write_npz(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes beside `out`, then renames: a full disk or a read-only folder leaves no half-written file."""
    partial = out.with_name(out.name + ".partial")
    try:
        with open(partial, "wb") as file:  # a file object: np.savez appends no suffix to it
            np.savez(file, **arrays)
        os.replace(partial, out)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ConfigError("--out", str(out), f"a file that can be written here ({error.strerror})") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m lstm_exp.weights`."""
    parser = OneLineParser(prog="python -m lstm_exp.weights", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write a recorded run's weights in another layout")
    export.add_argument("run_id", metavar="RUN_ID", help="the run's id (or a unique prefix of it)")
    export.add_argument("--layout", required=True, choices=("keras", "tf1", "torch"))
    export.add_argument("--out", type=Path, default=None,
                        help="a .npz file in an existing folder (default: weights_<layout>.npz)")
    export.add_argument("--tracking-uri", default=None, help="default: sqlite:///$PWD/mlflow.db")
    export.add_argument("--forget-bias", type=float, default=None,
                        help="tf1: TF1's forget bias (default: the run's model.weights.forget_bias)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """`python -m lstm_exp.weights export ...`; exit 2 with one line on a bad run or option."""
    with exit_2_on_bad_input():
        args = build_parser().parse_command_line(argv)
        out = output_file("--out", args.out, (".npz",))
        forget_bias = finite_number("--forget-bias", args.forget_bias, -FLOAT32_MAX, FLOAT32_MAX)
        uri = store_uri("--tracking-uri", args.tracking_uri)
        path = export_run(args.run_id, args.layout, out, uri, forget_bias)
    print(f"wrote {path} ({args.layout} layout)")


if __name__ == "__main__":
    main()
