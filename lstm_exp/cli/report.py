"""The console report of a run, laid out as the tutorial printed its states."""

import numpy as np
from omegaconf import DictConfig


def _array(values: np.ndarray) -> str:
    return np.array2string(values, precision=8, suppress_small=False, max_line_width=100)


def format_report(cfg: DictConfig, result) -> str:
    """Each layer's final c and h, the output with its shape, and the reference check."""
    spec, arrays = result.spec, result.arrays
    lines = [
        f"model={cfg.model.name} ({spec.cell} {list(spec.units)}"
        + (", bidirectional" if spec.bidirectional else "")
        + f")  input={cfg.input.name} {tuple(arrays['input'].shape)}  seed={cfg.seed}"
        + f"  engine={result.engine}",
    ]
    for k, units in enumerate(spec.units):
        lines.append(f"layer {k}: {spec.cell}, {units} units")
        for part in ("c", "h"):
            name = f"layer_{k}/{part}"
            if name in arrays:
                lines.append(f"  {part} {arrays[name].shape} =")
                lines.append("    " + _array(arrays[name]).replace("\n", "\n    "))
    lines.append(f"output {tuple(arrays['output'].shape)} =")
    lines.append(_array(arrays["output"]))
    lines.append(f"reference check: max |keras - numpy float64| = {result.reference_max_abs_err:.3g}")
    if "forward_ms" in result.timings:
        lines.append(
            f"forward: {result.timings['forward_ms']:.3f} ms median over {cfg.run.repeat} passes"
            f", {result.timings['forward_gflops']:.2f} GFLOP/s"
        )
    return "\n".join(lines)


def format_shapes(shapes: dict[str, tuple[int, ...]]) -> str:
    """The dry-run table: every array's expected shape."""
    width = max(len(name) for name in shapes)
    return "\n".join(f"{name:<{width}}  {tuple(shape)}" for name, shape in shapes.items())
