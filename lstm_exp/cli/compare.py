"""Recorded runs side by side: a table of runs, what differs between two, their h norms over time.

    python -m lstm_exp.compare [--experiment NAME] [--filter EXPR] [--tracking-uri URI] [--plot PATH]
    python -m lstm_exp.compare RUN_A RUN_B [--plot PATH]
    python -m lstm_exp.compare --group-by KEY[,KEY] [--metric NAME] [--direction minimize|maximize] [...]

Runs are named by id or by a unique prefix of it (the table's first column). The filter is MLflow's
search grammar; dotted names may be written plainly (`params.model.cell = 'gru'`). Exit status: 0;
2 for a bad filter, run, experiment or store (one line on stderr).
"""

import argparse
import json
import tempfile
from pathlib import Path

from lstm_exp.cli.compare_groups import DIRECTIONS, compare_groups
from lstm_exp.cli.options import OneLineParser, exit_2_on_bad_input, output_file, store_uri
from lstm_exp.compute.array_diff import difference, read_arrays
from lstm_exp.config import names
from lstm_exp.errors import ConfigError
from lstm_exp.record.runs import download, find_run, open_store, search

# Formats matplotlib writes without extra software, each kept under the name given (PGF needs LaTeX).
PLOT_EXTENSIONS = (".png", ".pdf", ".svg", ".eps", ".jpg", ".jpeg")


def _per_layer(metrics: dict[str, float], statistic: str, digits: int = 3) -> str:
    """Every layer's `layer_{k}.{statistic}`, by layer."""
    return " ".join(f"{metrics[n]:.{digits}g}" for n in names.layer_metrics(metrics, statistic))


def table_row(client, run) -> dict[str, str]:
    """One run as the table shows it; shapes come from its shapes.json."""
    params, metrics = run.data.params, run.data.metrics
    shapes = {}
    if run.info.status == "FINISHED":
        with tempfile.TemporaryDirectory() as tmp:
            try:
                shapes = json.loads(download(client, run.info.run_id, "shapes.json", tmp).read_text())
            except ConfigError:
                pass  # a run logged before shapes.json existed shows no shapes
    actual = shapes.get("actual", {})
    err = metrics.get(names.REFERENCE_ERR)
    return {
        "run": run.info.run_id[:8],
        "name": run.info.run_name or "",
        "model": run.data.tags.get("lstm_exp.model", ""),
        "cell": params.get("model.cell", ""),
        "units": params.get("model.units", ""),
        "input": str(tuple(actual["input"])) if "input" in actual else "",
        "output": str(tuple(actual["output"])) if "output" in actual else "",
        "h norms": _per_layer(metrics, names.H_NORM, 4),
        "c norms": _per_layer(metrics, names.C_NORM, 4),
        "ref err": "" if err is None else f"{err:.2g}",
        "f mean": _per_layer(metrics, "forget_mean"),
        "pca 1": _per_layer(metrics, "pca_var_1"),
        "val loss": _value(metrics, names.VAL_LOSS),
        "/ baseline": _beats(metrics),
        "status": run.info.status,
    }


def _value(metrics: dict[str, float], name: str) -> str:
    return f"{metrics[name]:.4g}" if name in metrics else ""


def _beats(metrics: dict[str, float]) -> str:
    """A trained run's validation loss over its task's trivial predictor: below 1 beats it."""
    if names.VAL_LOSS not in metrics or not metrics.get(names.BASELINE_LOSS):
        return ""
    return f"{metrics[names.VAL_LOSS] / metrics[names.BASELINE_LOSS]:.3f}"


def format_table(rows: list[dict[str, str]]) -> str:
    """Rows of equal keys as aligned text columns under a header."""
    widths = {key: max(len(key), *(len(r[key]) for r in rows)) for key in rows[0]}
    lines = ["  ".join(key.ljust(w) for key, w in widths.items())]
    lines += ["  ".join(r[key].ljust(w) for key, w in widths.items()) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def compare_two(client, run_a, run_b) -> str:
    """Shapes and largest difference of every shared array, then the config keys that differ."""
    ids = run_a.info.run_id, run_b.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        a, b = (read_arrays(download(client, i, "states.npz", f"{tmp}/{n}")) for n, i in enumerate(ids))
    lines = [f"A {ids[0]}  {run_a.info.run_name}", f"B {ids[1]}  {run_b.info.run_name}",
             "arrays (shape in A, shape in B, largest |A - B|):"]
    shared = [name for name in a if name in b]
    width = max((len(n) for n in shared), default=0)
    for name in shared:
        shape_a, shape_b = str(a[name].shape), str(b[name].shape)
        lines.append(f"  {name:<{width}}  {shape_a:<14} {shape_b:<14} {difference(a[name], b[name])}")
    for label, mine, other in (("A", a, b), ("B", b, a)):
        if only := [n for n in mine if n not in other]:
            lines.append(f"only in {label}: {', '.join(only)}")
    pa, pb = run_a.data.params, run_b.data.params
    keys = sorted(k for k in {*pa, *pb} if pa.get(k) != pb.get(k))
    ma, mb = run_a.data.metrics, run_b.data.metrics
    shared = sorted(n for n in {*ma, *mb} if not names.is_grouped_timing(n))  # timings say nothing of states
    lines.append("metrics (A | B):")
    width = max((len(n) for n in shared), default=0)
    lines += [f"  {n:<{width}}  {_value(ma, n) or '(absent)'} | {_value(mb, n) or '(absent)'}"
              for n in shared]
    lines.append("config keys that differ (A | B):" if keys else "config: identical params")
    width = max((len(k) for k in keys), default=0)
    lines += [f"  {k:<{width}}  {pa.get(k, '(absent)')} | {pb.get(k, '(absent)')}" for k in keys]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m lstm_exp.compare`."""
    parser = OneLineParser(prog="python -m lstm_exp.compare", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", metavar="RUN", help="two runs to compare; none: list runs")
    parser.add_argument("--experiment", default="lstm_exp", help="runs listed from it (lstm_exp)")
    parser.add_argument("--filter", default="", help="MLflow search filter, e.g. params.model.cell = 'gru'")
    parser.add_argument("--tracking-uri", default=None, help="default: sqlite:///$PWD/mlflow.db")
    parser.add_argument("--plot", type=Path, default=None,
                        help="save the runs' h norms over time here: a .png, .pdf, .svg, .eps or .jpg "
                        "file in an existing folder")
    parser.add_argument("--group-by", default=None, metavar="KEY[,KEY]",
                        help="runs that agree on these config keys form a group: n, mean, std, 95%% CI, "
                        "and a verdict between the best group and the others")
    parser.add_argument("--metric", default=None, help="the verdict's metric (default: val_loss if recorded)")
    parser.add_argument("--direction", default="minimize", choices=DIRECTIONS,
                        help="which end of --metric is better (minimize)")
    return parser


def main(argv: list[str] | None = None) -> None:
    """The command line; exit 2 with one line on a bad option, filter, run, experiment or store."""
    parser = build_parser()
    with exit_2_on_bad_input():
        args = parser.parse_command_line(argv)
        if len(args.runs) not in (0, 2):
            parser.error(f"give two runs to compare, or none to list runs (got {len(args.runs)})")
        if args.runs and (args.group_by is not None or args.metric is not None):
            parser.error("--group-by and --metric compare groups of the listed runs, not two runs")
        plot = output_file("--plot", args.plot, PLOT_EXTENSIONS)
        with open_store(store_uri("--tracking-uri", args.tracking_uri)) as (client, _):
            if args.group_by is not None:
                runs = search(client, args.experiment, args.filter)
                print(compare_groups(runs, args))
            elif args.runs:
                runs = [find_run(client, ref) for ref in args.runs]
                print(compare_two(client, *runs))
            else:
                runs = search(client, args.experiment, args.filter)
                print(format_table([table_row(client, r) for r in runs]) if runs else "no runs match")
            if plot:
                from lstm_exp.record.plots import plot_h_norms

                print(f"plot: {plot_h_norms(client, runs, plot)}")


if __name__ == "__main__":
    main()
