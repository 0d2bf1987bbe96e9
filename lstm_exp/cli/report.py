"""`python -m lstm_exp.report`: a sweep's groups, verdict and learning curves as one HTML file to read.

    python -m lstm_exp.report RUN_ID [--out report.html]                 # a sweep's parent run
    python -m lstm_exp.report --group-by model.cell [--filter EXPR] [--out report.html]   # any runs

The page is self-contained (figures embedded, no script, no CDN): it opens offline, and a sweep logs
the same page on its parent as `report.html`. A parent's groups are made as its sweep made them (its
`lstm_exp.group_by` and `lstm_exp.sweep_metric` tags), unless --group-by or --metric say otherwise.
The store is opened read-only. Exit status: 0; 2 for a bad option, run, filter, key, metric or store.
"""

import argparse
import csv
import os
import tempfile
from pathlib import Path

from lstm_exp.cli.compare_groups import DIRECTIONS, group_keys, grouped_runs
from lstm_exp.cli.options import OneLineParser, exit_2_on_bad_input, output_file, store_uri
from lstm_exp.config.sweep_validate import default_group_by
from lstm_exp.errors import ConfigError
from lstm_exp.jobs.sweep_conclusions import rows_conclusions, swept_keys, write_report
from lstm_exp.record.groups import read_runs
from lstm_exp.record.runs import download, find_run, open_store, search


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m lstm_exp.report`."""
    parser = OneLineParser(prog="python -m lstm_exp.report", description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", default=None, metavar="RUN_ID",
                        help="a sweep's parent run (id or unique prefix); else --group-by selects runs")
    parser.add_argument("--group-by", default=None, metavar="KEY[,KEY]", help="config keys making the groups")
    parser.add_argument("--metric", default=None,
                        help="the verdict's metric (default: the sweep's, or val_loss)")
    parser.add_argument("--direction", default=None, choices=DIRECTIONS,
                        help="which end of --metric is better")
    parser.add_argument("--filter", default="", help="MLflow search filter for the runs (without RUN_ID)")
    parser.add_argument("--experiment", default="lstm_exp", help="runs searched in it (lstm_exp)")
    parser.add_argument("--tracking-uri", default=None, help="default: sqlite:///$PWD/mlflow.db")
    parser.add_argument("--out", type=Path, default=Path("report.html"),
                        help="the HTML file to write, in an existing folder (report.html)")
    return parser


def _of_parent(client, args, ref: str):
    parent = find_run(client, ref, "RUN_ID")
    tags = parent.data.tags
    if tags.get("lstm_exp.sweep") != "parent":
        raise ConfigError("RUN_ID", ref, "a sweep's parent run (this one is a single run or a sweep's job; "
                          "for any runs use --group-by with --filter)")
    with tempfile.TemporaryDirectory(prefix="lstm_exp_report_") as tmp:
        table = download(client, parent.info.run_id, "sweep_summary.csv", tmp, "RUN_ID")
        with table.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    recorded = tags.get("lstm_exp.group_by")  # a parent recorded before groups existed has none
    if args.group_by is not None:
        keys = group_keys(args.group_by)
    elif recorded is not None:
        keys = recorded.split(",") if recorded else []
    else:
        keys = default_group_by(swept_keys([row["overrides"].split() for row in rows]))
    metric = args.metric or tags.get("lstm_exp.sweep_metric") or None
    direction = args.direction or tags.get("lstm_exp.sweep_direction") or "minimize"
    found = rows_conclusions(client, rows, keys, metric, direction, ("--group-by", "--metric"))
    return found, parent.info.run_name or parent.info.run_id, [
        f"sweep parent run {parent.info.run_id}", f"jobs: {tags.get('lstm_exp.jobs', len(rows))}"]


def _of_filter(client, args):
    runs = search(client, args.experiment, args.filter)
    found = grouped_runs(runs, args.experiment, args.filter, group_keys(args.group_by), args.metric,
                         args.direction or "minimize")
    by_id = {r.run_id: r for r in read_runs(client, [r.run_id for g in found.groups for r in g.runs])}
    for group in found.groups:  # the learning curves, read for the FINISHED runs only
        group.runs = [by_id[r.run_id] for r in group.runs]
    what = f"runs of experiment {args.experiment!r}" + (f" where {args.filter}" if args.filter else "")
    return found, f"{what}, by {args.group_by}", [f"{len(runs)} runs: {what}"]


def main(argv: list[str] | None = None) -> None:
    """The command line; exit 2 with one line on a bad option, run, filter, key, metric or store."""
    parser = build_parser()
    with exit_2_on_bad_input():
        args = parser.parse_command_line(argv)
        if args.run is None and args.group_by is None:
            parser.error("give a sweep's parent RUN_ID, or --group-by (with --filter) to choose runs")
        if args.run is not None and args.filter:
            parser.error("--filter chooses runs without RUN_ID; a parent's runs are its sweep's jobs")
        out = output_file("--out", args.out, (".html",))
        uri = store_uri("--tracking-uri", args.tracking_uri)
        with open_store(uri) as (client, uri), tempfile.TemporaryDirectory(prefix="lstm_exp_report_") as tmp:
            found, title, facts = _of_parent(client, args, args.run) if args.run else _of_filter(client, args)
            page = write_report(found, f"lstm_exp report: {title}", [*facts, f"store: {uri}"], uri, Path(tmp))
            _replace(page, out)
        print(f"report: {out}")


def _replace(page: Path, out: Path) -> None:
    """Copies the page beside `out` and renames it: a full disk leaves no half-written report."""
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_bytes(page.read_bytes())
        os.replace(partial, out)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ConfigError("--out", str(out), f"a file that can be written here ({error.strerror})") from None


if __name__ == "__main__":
    main()
