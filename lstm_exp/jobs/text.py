"""The text a job and a sweep print: a run's report (its summary.txt), progress lines, the sweep's table."""

import numpy as np

from lstm_exp.config import names
from lstm_exp.config.specs import Experiment, TaskSpec


def _array(values: np.ndarray) -> str:
    return np.array2string(values, precision=8, suppress_small=False, max_line_width=100)


def format_report(experiment: Experiment, result) -> str:
    """Each layer's final c and h, the output with its shape, and the reference check."""
    spec, arrays = result.spec, result.arrays
    lines = [
        f"model={experiment.model_name} ({spec.cell} {list(spec.units)}"
        + (", bidirectional" if spec.bidirectional else "")
        + f")  input={experiment.input_name} {tuple(arrays['input'].shape)}  seed={experiment.seed}"
        + f"  engine={result.engine_label}",
    ]
    for k, units in enumerate(spec.units):
        lines.append(f"layer {k}: {spec.cell}, {units} units")
        for part in (names.C, names.H):
            name = names.array_name(k, part)
            if name in arrays:
                lines.append(f"  {part} {arrays[name].shape} =")
                lines.append("    " + _array(arrays[name]).replace("\n", "\n    "))
    lines.append(f"output {tuple(arrays['output'].shape)} =")
    lines.append(_array(arrays["output"]))
    error = result.reference_max_abs_err
    lines.append(f"reference check: max |{result.engine} - numpy float64| = {error:.3g}")
    if result.training:
        t = result.training
        lines.append(f"trained on task {experiment.task.name}: val_loss {t.val_loss[-1]:.4g} (baseline "
                     f"{t.baseline_loss:.4g}) after {len(t.val_loss)} epochs, {t.train_s:.1f} s")
        if t.stopped_epoch is not None:
            restored = " (its weights restored)" if experiment.task.controls.restore_best_weights else ""
            lines.append(f"early stopping: stopped after epoch {t.stopped_epoch + 1} of "
                         f"{experiment.task.epochs}; best val_loss {t.val_loss[t.best_epoch]:.4g} at epoch "
                         f"{t.best_epoch + 1}{restored}")
    if "forward_ms" in result.timings:
        lines.append(
            f"forward: {result.timings['forward_ms']:.3f} ms median over {experiment.run.repeat} passes"
            f", {result.timings['forward_gflops']:.2f} GFLOP/s"
        )
    return "\n".join(lines)


def format_shapes(shapes: dict[str, tuple[int, ...]]) -> str:
    """The dry-run table: every array's expected shape."""
    width = max(len(name) for name in shapes)
    return "\n".join(f"{name:<{width}}  {tuple(shape)}" for name, shape in shapes.items())


def format_estimate(estimate: int, max_memory_gb: float, largest: str) -> str:
    """The dry run's memory line: the peak `run.max_memory_gb` is checked against, and what fills it."""
    line = (f"memory: about {estimate / 2**30:.2f} GB at the peak, TensorFlow's base included "
            f"(run.max_memory_gb={max_memory_gb:g})")
    if largest == "gates":
        line += "; the gates (4 per LSTM layer and direction) are the largest arrays"
    return line


SEARCH_KEYS = ("sweep.trial=", "sweep.study=", "sweep.storage=", "sweep.pruner=")


def job_overrides(overrides: list[str]) -> list[str]:
    """The overrides that say what a job computes (where it records, Hydra's own, and a search trial's
    hidden `sweep.trial|study|storage|pruner`, left out)."""
    return [o for o in overrides if not o.startswith(("tracking", "hydra", "resume=", *SEARCH_KEYS))]


def progress_line(index: int, total: int | None, overrides: list[str], outcome) -> str:
    """One line per sweep job as it ends: index/total, overrides, status, seconds, run id."""
    where = f"[{index + 1}/{total}]" if total else f"[{index + 1}]"
    overrides = job_overrides(overrides)
    run = f"  run {outcome.run_id}" if outcome.run_id else ""
    described = " ".join(overrides) or "(no overrides)"
    return f"{where} {described}  {outcome.status}  {outcome.seconds:.1f} s{run}"


def format_sweep_table(rows: list[dict]) -> str:
    """Every job of a sweep: overrides, status, key metrics, run id, as aligned columns."""
    if not rows:
        return "no jobs"
    h_norms = names.layer_metrics({k for r in rows for k in r}, names.H_NORM)
    shown = [*h_norms[-1:], names.REFERENCE_ERR]  # the last layer's h norm and the check
    if any(names.VAL_LOSS in r for r in rows):  # a training sweep: how each job did against the baseline
        shown += [names.VAL_LOSS, names.BASELINE_LOSS]

    def cell(row, key):
        value = row.get(key)
        if value is None:
            return ""
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    columns = ["job", "overrides", "status", "seconds", *shown, "run_id"]
    table = [[cell(r, c) for c in columns] for r in rows]
    headers = [c.replace(names.REFERENCE_ERR, "ref err") for c in columns]
    widths = [max(len(h), *(len(line[i]) for line in table)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in table]
    return "\n".join(line.rstrip() for line in lines)


def sweep_counts(outcomes: list) -> str:
    """'6 jobs: 4 finished, 1 skipped, 1 failed (job 3)'."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status.lower()] = counts.get(outcome.status.lower(), 0) + 1
    failed = [str(i) for i, o in enumerate(outcomes) if o.exit_status]
    text = f"{len(outcomes)} jobs: " + ", ".join(f"{n} {status}" for status, n in counts.items())
    return text + (f" (failed: job {', '.join(failed)})" if failed else "")


def epoch_printer(task: TaskSpec | None):
    """The per-epoch progress line of a training run, or None without a task."""
    if task is None:
        return None

    def print_epoch(epoch: int, train_loss: float, val_loss: float, seconds: float) -> None:
        print(f"  epoch {epoch + 1}/{task.epochs}  train_loss {train_loss:.4g}  val_loss {val_loss:.4g}"
              f"  {seconds:.1f} s", flush=True)

    return print_epoch


def trial_line(number: int, counted: int, total: int, params: dict, outcome, metric: str) -> str:
    """One line per finished search trial: number, params, value or PRUNED at epoch k, seconds, run.

    `[counted/total]`: the study's trials that count toward n_trials (COMPLETE, PRUNED) once this one
    was told, so it never passes n_trials after a resume; a FAIL trial's line says it is not counted.
    """
    shown = " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in params.items())
    progress = f"[{counted}/{total}]"
    if outcome.trial_state == "COMPLETE":
        ended = f"{metric} {outcome.objective:.6g}"
    elif outcome.trial_state == "PRUNED":
        ended = f"PRUNED at epoch {outcome.epochs}"
    else:
        ended = f"FAIL ({outcome.trial_note or outcome.error})"
        progress = f"[{counted}/{total}, this one not counted]"
    run = f"  run {outcome.run_id}" if outcome.run_id else ""
    return f"trial {number} {progress}  {shown}  {ended}  {outcome.seconds:.1f} s{run}"
