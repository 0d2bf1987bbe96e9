"""Recorded runs side by side: a table of runs, what differs between two, their h norms over time.

    python -m lstm_exp.compare [--experiment NAME] [--filter EXPR] [--tracking-uri URI] [--plot PATH]
    python -m lstm_exp.compare RUN_A RUN_B [--plot PATH]

Runs are named by id or by a unique prefix of it (the table's first column). The filter is MLflow's
search grammar; dotted names may be written plainly (`params.model.cell = 'gru'`). Exit status: 0;
2 for a bad filter, run, experiment or store (one line on stderr).
"""

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from lstm_exp.cli.options import OneLineParser, check_utf8, output_file, store_uri
from lstm_exp.compute.array_diff import difference, read_arrays
from lstm_exp.errors import ConfigError
from lstm_exp.record.runs import download, find_run, open_store, search

_H_NORM = re.compile(r"layer_(\d+)\.h_norm")
# Formats matplotlib writes without extra software, each kept under the name given (PGF needs LaTeX).
PLOT_EXTENSIONS = (".png", ".pdf", ".svg", ".eps", ".jpg", ".jpeg")


def _norms(metrics: dict[str, float], part: str) -> str:
    names = sorted((n for n in metrics if re.fullmatch(rf"layer_\d+\.{part}_norm", n)),
                   key=lambda n: int(n.split(".")[0][len("layer_") :]))
    return " ".join(f"{metrics[n]:.4g}" for n in names)


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
    err = metrics.get("reference_max_abs_err")
    return {
        "run": run.info.run_id[:8],
        "name": run.info.run_name or "",
        "model": run.data.tags.get("lstm_exp.model", ""),
        "cell": params.get("model.cell", ""),
        "units": params.get("model.units", ""),
        "input": str(tuple(actual["input"])) if "input" in actual else "",
        "output": str(tuple(actual["output"])) if "output" in actual else "",
        "h norms": _norms(metrics, "h"),
        "c norms": _norms(metrics, "c"),
        "ref err": "" if err is None else f"{err:.2g}",
        "f mean": _per_layer(metrics, "forget_mean"),
        "pca 1": _per_layer(metrics, "pca_var_1"),
        "val loss": _value(metrics, "val_loss"),
        "/ baseline": _beats(metrics),
        "status": run.info.status,
    }


def _per_layer(metrics: dict[str, float], statistic: str) -> str:
    names = sorted((n for n in metrics if n.startswith("layer_") and n.endswith("." + statistic)),
                   key=lambda n: int(n.split(".")[0][len("layer_") :]))
    return " ".join(f"{metrics[n]:.3g}" for n in names)


def _value(metrics: dict[str, float], name: str) -> str:
    return f"{metrics[name]:.4g}" if name in metrics else ""


def _beats(metrics: dict[str, float]) -> str:
    """A trained run's validation loss over its task's trivial predictor: below 1 beats it."""
    if "val_loss" not in metrics or not metrics.get("baseline_loss"):
        return ""
    return f"{metrics['val_loss'] / metrics['baseline_loss']:.3f}"


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
    shared = sorted(n for n in {*ma, *mb} if "/" not in n)  # timings (timing/...) say nothing of the states
    lines.append("metrics (A | B):")
    width = max((len(n) for n in shared), default=0)
    lines += [f"  {n:<{width}}  {_value(ma, n) or '(absent)'} | {_value(mb, n) or '(absent)'}"
              for n in shared]
    lines.append("config keys that differ (A | B):" if keys else "config: identical params")
    width = max((len(k) for k in keys), default=0)
    lines += [f"  {k:<{width}}  {pa.get(k, '(absent)')} | {pb.get(k, '(absent)')}" for k in keys]
    return "\n".join(lines)


def plot_h_norms(client, runs: list, path: Path) -> Path:
    """Saves one panel per layer with every run's `layer_{k}.h_norm` over the time steps."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels: dict[int, list] = {}  # layer k -> [(run index, steps, values)]
    for i, run in enumerate(runs):
        for name in run.data.metrics:
            if match := _H_NORM.fullmatch(name):
                history = sorted(client.get_metric_history(run.info.run_id, name), key=lambda m: m.step)
                panels.setdefault(int(match[1]), []).append(
                    (i, [m.step for m in history], [m.value for m in history]))
    if not panels:
        raise ConfigError("--plot", str(path), "a figure of runs that logged layer_{k}.h_norm; none did")
    shown = sorted({i for lines in panels.values() for i, _, _ in lines})
    fig, axes = plt.subplots(1, len(panels), figsize=(max(4.5 * len(panels), 7), 3.4 + 0.2 * len(shown)),
                             squeeze=False, layout="constrained")
    for ax, k in zip(axes[0], sorted(panels), strict=True):
        for i, steps, values in panels[k]:  # a run keeps its colour in every panel
            ax.plot(steps, values, marker="o", color=f"C{i % 10}")
        ax.set(title=f"layer_{k}.h_norm", xlabel="time step t", ylabel="||h_t||")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    labels = [f"{runs[i].info.run_id[:8]} {(runs[i].info.run_name or '')[:70]}" for i in shown]
    handles = [plt.Line2D([], [], marker="o", color=f"C{i % 10}") for i in shown]
    fig.legend(handles, labels, loc="outside lower center", fontsize="small", frameon=False)
    # Written beside `path` and renamed, as `weights export` writes: a full disk or a read-only folder
    # leaves no empty or half-written figure, and an earlier one at `path` stays whole.
    partial = path.with_name(path.name + ".partial")
    try:
        fig.savefig(partial, dpi=100, format=path.suffix[1:].lower())
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        allowed = f"a file that can be written here ({error.strerror})"
        raise ConfigError("--plot", str(path), allowed) from None
    finally:
        plt.close(fig)
    return path


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
    return parser


def main(argv: list[str] | None = None) -> None:
    """The command line; exit 2 with one line on a bad option, filter, run, experiment or store."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        check_utf8(argv)
        args = parser.parse_args(argv)
        if len(args.runs) not in (0, 2):
            parser.error(f"give two runs to compare, or none to list runs (got {len(args.runs)})")
        plot = output_file("--plot", args.plot, PLOT_EXTENSIONS)
        client, _ = open_store(store_uri("--tracking-uri", args.tracking_uri))
        if args.runs:
            runs = [find_run(client, ref) for ref in args.runs]
            print(compare_two(client, *runs))
        else:
            runs = search(client, args.experiment, args.filter)
            print(format_table([table_row(client, r) for r in runs]) if runs else "no runs match")
        if plot:
            print(f"plot: {plot_h_norms(client, runs, plot)}")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
