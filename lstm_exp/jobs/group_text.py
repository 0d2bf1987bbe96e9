"""The group table and the verdict as text: what a sweep prints at its end and `compare --group-by`
prints, and the parent run's description (`mlflow.note.content`).
"""

from lstm_exp.record.groups import Conclusions, Group

SHOWN = ("val_loss_ratio", "train_s", "forward_ms")  # beside the verdict's metric, when recorded


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _interval(group: Group, metric: str) -> str:
    s = group.summaries[metric]
    return "" if s.ci_low is None else f"{s.ci_low:.4g} to {s.ci_high:.4g}"


def table_columns(found: Conclusions) -> list[str]:
    """The metrics the text table shows: the verdict's first, then a few others recorded."""
    wanted = dict.fromkeys(m for m in (found.verdict.metric, *SHOWN) if m)
    return [m for m in wanted if m in found.metrics][:3] or found.metrics[:1]


def format_groups(found: Conclusions) -> str:
    """One row per group: its keys, n finished, failed, and per metric mean, std and 95 % interval."""
    if not found.groups:
        return "groups: no job recorded a run"
    headers = [*(found.keys or ["group"]), "n", "failed"]
    shown = table_columns(found)
    for m in shown:
        headers += [f"{m} mean", "std", "95 % CI"]
    excluded = any(g.summaries[m].excluded for g in found.groups for m in shown)
    if excluded:
        headers.append("NaN left out")
    rows = []
    for g in found.groups:
        row = [*(g.values or ("all runs",)), str(len(g.runs)), str(len(g.failed))]
        for m in shown:
            row += [_number(g.summaries[m].mean), _number(g.summaries[m].std), _interval(g, m)]
        if excluded:
            row.append(str(sum(g.summaries[m].excluded for m in shown)))
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def failures(found: Conclusions) -> list[str]:
    """The runs left out of every mean, named: failed, killed, or never recorded."""
    named = [f"{g.label}: {run}" for g in found.groups for run in g.failed] + found.unrecorded
    return [f"not averaged ({len(named)}): " + "; ".join(named)] if named else []


def format_conclusions(found: Conclusions) -> str:
    """The group table, the runs left out, and the verdict's sentences."""
    verdict = found.verdict
    head = [format_groups(found), *failures(found)]
    if verdict.best is not None and verdict.differences:
        head.append(f"best by {verdict.metric} ({verdict.direction}): {verdict.best.label}")
    return "\n".join([*head, *(f"verdict: {line}" for line in verdict.lines)])


def description(found: Conclusions, swept: str, counts: str) -> str:
    """The sweep parent's description (markdown): the verdict first (the UI shows the first lines
    until "Show more"), then the best group, the jobs, what was swept, and the runs not averaged."""
    verdict = found.verdict
    how = f" by {verdict.metric} ({verdict.direction}; Welch's 95 % intervals)" if verdict.metric else ""
    lines = [f"**Verdict**{how}", "", *(f"- {line}" for line in verdict.lines), ""]
    if verdict.best is not None:
        s = verdict.best.summaries[verdict.metric]
        interval = f", 95 % CI {s.ci_low:.4g} to {s.ci_high:.4g}" if s.ci_low is not None else ""
        mean = f"mean {verdict.metric} {s.mean:.4g}{interval} (n = {s.n})"
        lines += [f"**Best** {verdict.best.label}: {mean}", ""]
    lines += [f"**Jobs** {counts}", "",
              f"**Groups** by {', '.join(found.keys) or '(nothing: one group)'}: {len(found.groups)}", "",
              f"**Sweep** {swept}"]
    return "\n".join([*lines, *(["", *failures(found)] if failures(found) else [])])
