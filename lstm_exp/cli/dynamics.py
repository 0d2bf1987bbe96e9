"""The fixed points of a recorded LSTM run and their stability, recorded as a new, linked run.

    python -m lstm_exp.dynamics RUN_ID [--input 0,0,0] [--n-inits 256] [--noise 0.5] [--max-iters 200]
                                       [--max-seconds 60] [--seed 0] [--tracking-uri URI]

RUN_ID is a run's id or a unique prefix of it. The analysed run is only read; the results
(`fixed_points.npz`, `plots/fixed_points.png`, metrics fp.n_stable, fp.n_saddle, fp.max_q,
fp.n_not_converged) go to a new run of the same experiment tagged `lstm_exp.dynamics_of=<RUN_ID>`.
"""

import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from lstm_exp.cli.options import OneLineParser, finite_number, store_uri
from lstm_exp.cli.recorded_files import KEY, read_run
from lstm_exp.compute.files import DEFAULT_BUDGET
from lstm_exp.compute.fixed_points import FixedPointOptions
from lstm_exp.config.analysis import check_plain_lstm, check_search_memory
from lstm_exp.config.experiment import MAX_SEED
from lstm_exp.config.validate import FLOAT32_MAX
from lstm_exp.errors import ConfigError
from lstm_exp.record.dynamics_run import (
    analyse_fixed_points,
    fixed_point_metrics,
    fixed_points_report,
    record_dynamics,
)
from lstm_exp.record.run_record import Terminated, signals_kept


def constant_input(text: str | None, features: int) -> np.ndarray:
    """`--input`: F comma-separated finite numbers, or None for zeros (the `analysis.input` default)."""
    if text is None:
        return np.zeros(features)
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != features or not all(np.isfinite(values)) or max(map(abs, values)) > FLOAT32_MAX:
        raise ConfigError("--input", text, f"{features} comma-separated finite numbers (the run's input "
                          f"width F={features}), e.g. {','.join(['0'] * features)}")
    return np.asarray(values, np.float64)


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m lstm_exp.dynamics", description=__doc__.split("\n")[0])
    defaults = FixedPointOptions()
    parser.add_argument("run_id", metavar="RUN_ID", help="the run's id (or a unique prefix of it)")
    parser.add_argument("--input", default=None, help="the constant input, F comma-separated numbers "
                        "(default: zeros)")
    parser.add_argument("--n-inits", type=int, default=defaults.n_inits, help="initial states")
    parser.add_argument("--noise", type=float, default=defaults.noise,
                        help="std of the initial states' noise")
    parser.add_argument("--max-iters", type=int, default=defaults.max_iters)
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds)
    parser.add_argument("--seed", type=int, default=defaults.seed, help="draws the initial states")
    parser.add_argument("--tracking-uri", default=None, help="default: sqlite:///$PWD/mlflow.db")
    return parser


def _options(args) -> FixedPointOptions:
    for option, value in (("--n-inits", args.n_inits), ("--max-iters", args.max_iters)):
        if not 1 <= value <= 100_000:
            raise ConfigError(option, value, "an integer from 1 to 100000")
    if not 0 <= args.seed <= MAX_SEED:
        raise ConfigError("--seed", args.seed, "an integer from 0 to 2**32-1")
    return FixedPointOptions(n_inits=args.n_inits, noise=finite_number("--noise", args.noise, 0.0, 1e3),
                             max_iters=args.max_iters,
                             max_seconds=finite_number("--max-seconds", args.max_seconds, 0.001, 86400.0),
                             seed=args.seed)


def main(argv: list[str] | None = None) -> None:
    """`python -m lstm_exp.dynamics RUN_ID`; exit 2 with one line on a bad run or option."""
    try:
        with signals_kept():
            args = build_parser().parse_command_line(argv)
            options = _options(args)
            recorded, uri = read_run(args.run_id, store_uri("--tracking-uri", args.tracking_uri))
            check_plain_lstm(recorded.spec, KEY, recorded.run_id)
            check_search_memory(recorded.spec, options.n_inits, DEFAULT_BUDGET, "--n-inits", options.n_inits)
            u = constant_input(args.input, recorded.features)
            with tempfile.TemporaryDirectory(prefix="lstm_exp_dynamics_") as folder:
                found, readout = analyse_fixed_points(recorded.spec, recorded.weights, recorded.states,
                                                      recorded.readout, u, options, Path(folder))
                report = fixed_points_report(found, readout, f"run {recorded.run_id}")
                params = {key: str(value) for key, value in asdict(options).items()}
                params["input"] = ",".join(f"{v:g}" for v in u)
                new_run = record_dynamics(uri, recorded.run, Path(folder), fixed_point_metrics(found), params,
                                          report.replace("\n", "  \n"))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Terminated:
        sys.exit(143)
    print(report)
    print(f"recorded as run {new_run} (tag lstm_exp.dynamics_of={recorded.run_id})")


if __name__ == "__main__":
    main()
