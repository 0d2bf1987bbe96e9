"""The sweep report: one self-contained HTML file (`report.html`) to read offline.

Everything is in the file: the style inline, each figure a base64 PNG in a `data:` URI, no script and
no link to a CDN. It holds the group table, the verdict, the learning-curve bands, each group's state
analyses, and every run linked to its page in the MLflow UI.
"""

import base64
import html
from pathlib import Path

STYLE = """body{font-family:sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}
th{background:#eee}td.key,th.key{text-align:left}.best{background:#e6f4e6}li{margin:.2em 0}
img{max-width:100%;border:1px solid #ddd}.note{color:#555;font-size:.9em}"""


def _e(value) -> str:
    return html.escape(str(value))


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _ci(summary) -> str:
    return "" if summary.ci_low is None else f"{summary.ci_low:.4g} to {summary.ci_high:.4g}"


def image_tag(png: Path, alt: str) -> str:
    """An <img> holding the PNG itself (a data: URI), so the page needs no other file."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def group_table(found, metrics: list[str]) -> str:
    """One <tbody> row per group: its keys, n, failed, and each metric's mean, std and 95 % interval."""
    keys = found.keys or ["group"]
    best = found.verdict.best
    head = "".join(f'<th class="key">{_e(k)}</th>' for k in keys) + "<th>n</th><th>not averaged</th>"
    head += "".join(f"<th>{_e(m)} mean</th><th>std</th><th>95 % CI</th>" for m in metrics)
    rows = []
    for g in found.groups:
        cells = "".join(f'<td class="key">{_e(v)}</td>' for v in (g.values or ("all runs",)))
        cells += f"<td>{len(g.runs)}</td><td>{len(g.failed)}</td>"
        for m in metrics:
            s = g.summaries[m]
            cells += f"<td>{_num(s.mean)}</td><td>{_num(s.std)}</td><td>{_ci(s)}</td>"
        mark = ' class="best"' if best is g else ""
        rows.append(f"<tr{mark}>{cells}</tr>")
    return f'<table id="groups"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def analyses_table(found, analyses: list[str]) -> str:
    """Per-group state analyses: one row per analysis, a column per group (mean and 95 % interval)."""
    head = '<th class="key">analysis</th>' + "".join(f"<th>{_e(g.label)}</th>" for g in found.groups)
    rows = []
    for name in analyses:
        cells = []
        for g in found.groups:
            s = g.summaries[name]
            cells.append(f"<td>{_num(s.mean)}" + (f" ({_ci(s)})" if s.ci_low is not None else "") + "</td>")
        rows.append(f'<tr><td class="key">{_e(name)}</td>{"".join(cells)}</tr>')
    return f'<table id="analyses"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def runs_list(found, ui: str) -> str:
    """Every run by group, each a link to its page in the MLflow UI at `ui`."""
    items = []
    for g in found.groups:
        links = [f'<a href="{_e(run_link(ui, r.experiment_id, r.run_id))}">{_e(r.name)}</a> ({_e(r.status)})'
                 for r in g.runs]
        failed = [_e(f) for f in g.failed]
        items.append(f"<li><b>{_e(g.label)}</b>: {', '.join(links + failed) or 'no runs'}</li>")
    items += [f"<li>{_e(job)}</li>" for job in found.unrecorded]
    return f"<ul>{''.join(items)}</ul>"


def run_link(ui: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the UI's model-training view."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def report_page(found, title: str, facts: list[str], curves: Path | None, ui: str) -> str:
    """The whole page as text.

    Args:
        found: `record.groups.Conclusions`.
        title: what the report is of (`sweep model.cell=lstm,gru seed=0,1,2`).
        facts: lines said first (what was swept, the jobs' counts, the store).
        curves: the learning-curve figure (a PNG), or None without training.
        ui: where the MLflow UI serves this store, for the runs' links.
    """
    main = [m for m in dict.fromkeys([found.verdict.metric, "val_loss_ratio", "train_s", "forward_ms",
                                      "reference_max_abs_err"]) if m in found.metrics]
    analyses = [m for m in found.metrics if m.startswith("layer_")]
    parts = [f"<h1>{_e(title)}</h1>", "<ul>" + "".join(f"<li>{_e(f)}</li>" for f in facts) + "</ul>",
             "<h2>Verdict</h2>", "<ul>" + "".join(f"<li>{_e(v)}</li>" for v in found.verdict.lines) + "</ul>",
             f"<h2>Groups (by {_e(', '.join(found.keys) or 'nothing')})</h2>", group_table(found, main),
             '<p class="note">n: FINISHED runs, whose values are averaged; 95 % CI: Student t interval '
             "of the mean (none with n = 1); the verdict's differences: Welch's t interval.</p>"]
    if curves is not None:
        parts += ["<h2>Learning curves</h2>", image_tag(curves, "val_loss per epoch, mean and 95 % band")]
    if analyses:
        parts += ["<h2>State analyses per group</h2>", analyses_table(found, analyses)]
    parts += ["<h2>Runs</h2>", f'<p class="note">Links open the MLflow UI at {_e(ui)}.</p>',
              runs_list(found, ui)]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")
