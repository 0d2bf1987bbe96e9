"""The names of DESIGN.md's contracts, built and parsed in this one place (no TensorFlow, no MLflow).

Arrays (`Result.arrays`, `states.npz`) and keras-layout weights (`weights.npz`), k counting from 0:

    input, output                       the stack's input and the last layer's output
    layer_{k}/{part}                    sequence, h, c, gates/{i,f,g,o}; weights: kernel, bias, ...
    layer_{k}/{direction}/{part}        direction fw or bw: one direction of a bidirectional layer

Metrics (MLflow):

    layer_{k}.{statistic}               h_norm, c_norm, and the analyses (forget_mean, pca_var_1, ...)
    timing/{name}                       the runner's timings, grouped apart in the UI ...
    forward_ms, train_s                 ... but for these two, which users compare runs by
    reference_max_abs_err, train_loss, val_loss, baseline_loss
    learning_rate                       per epoch (step=epoch), when a schedule or warm-up sets it
    stopped_epoch, best_epoch           with early stopping (task.patience > 0): the last epoch
                                        trained and the best val_loss's epoch, counted from 0
    fp.{n_stable,n_saddle,max_q,n_not_converged}   the fixed points of `lstm_exp.dynamics`
    search.{trials_counted,trials_failed,trials_killed}   a search's parent: COMPLETE + PRUNED (what
                                        n_trials counts), FAIL, and of those the killed attempts

MLflow datasets of `task=file` (`mlflow.data.context` input tag): training, validation.

Example:
    >>> array_name(1, "h", "bw")
    'layer_1/bw/h'
    >>> parse_array_name("layer_1/bw/gates/f")
    ArrayName(layer=1, part='gates/f', direction='bw')
    >>> layer_metric(0, H_NORM), parse_layer_metric("layer_0.h_norm")
    ('layer_0.h_norm', (0, 'h_norm'))
"""

import re
from dataclasses import dataclass

GATES = ("i", "f", "g", "o")  # keras gate order; `g` is the cell candidate (TF1's j)
FORWARD, BACKWARD = "fw", "bw"
INPUT, OUTPUT = "input", "output"
SEQUENCE, H, C = "sequence", "h", "c"  # a layer's output sequence and final states

H_NORM, C_NORM = "h_norm", "c_norm"
REFERENCE_ERR = "reference_max_abs_err"
TRAIN_LOSS, VAL_LOSS, BASELINE_LOSS = "train_loss", "val_loss", "baseline_loss"
LEARNING_RATE = "learning_rate"
STOPPED_EPOCH, BEST_EPOCH = "stopped_epoch", "best_epoch"
TRAINING_CONTEXT, VALIDATION_CONTEXT = "training", "validation"  # MLflow dataset contexts (task=file)
DATASETS_FILE = "datasets.json"  # task=file: the splits' descriptions, what the store logs as datasets
UNPREFIXED_TIMINGS = ("forward_ms", "train_s")  # names users and scripts compare runs by
TIMING_GROUP = "timing/"

# Dynamics (`python -m lstm_exp.dynamics`, `analysis.fixed_points=true`): artifacts and metrics.
READOUT_FILE = "readout.npz"  # a trained run's readout (`readout/kernel` (H, O), `readout/bias` (O,))
FIXED_POINTS_FILE = "fixed_points.npz"
FIXED_POINTS_PLOT = "plots/fixed_points.png"
FP_N_STABLE, FP_N_SADDLE, FP_MAX_Q = "fp.n_stable", "fp.n_saddle", "fp.max_q"
FP_N_NOT_CONVERGED = "fp.n_not_converged"
DYNAMICS_OF_TAG = "lstm_exp.dynamics_of"  # on a dynamics run: the id of the run it analysed

# A search's parent run: how its study's trials add up (n_trials counts COMPLETE + PRUNED only).
TRIALS_COUNTED, TRIALS_FAILED = "search.trials_counted", "search.trials_failed"
TRIALS_KILLED = "search.trials_killed"  # FAIL trials whose worker was killed, asked again as new trials

_LAYER = re.compile(r"layer_(\d+)")
_ARRAY = re.compile(r"layer_(\d+)/(?:(fw|bw)/)?(.+)")
_LAYER_METRIC = re.compile(r"layer_(\d+)\.(.+)")


def directions(bidirectional: bool) -> tuple[str, ...]:
    """One layer's directions: ``("",)``, or ``("fw", "bw")`` when bidirectional."""
    return (FORWARD, BACKWARD) if bidirectional else ("",)


def layer_name(layer: int) -> str:
    """``layer_{k}``: the layer itself (its Keras layer, its PCA trajectory in pca_trajectories.npz)."""
    return f"layer_{layer}"


def parse_layer_name(name: str) -> int | None:
    """k of ``layer_{k}``; None for other names."""
    match = _LAYER.fullmatch(name)
    return int(match[1]) if match else None


def flat_layer_name(layer: int, direction: str = "") -> str:
    """``layer_{k}`` or ``layer_{k}_{direction}``, where a slash cannot go (Keras layers, plot files)."""
    return layer_name(layer) + (f"_{direction}" if direction else "")


def layer_prefix(layer: int, direction: str = "") -> str:
    """``layer_{k}/``, or ``layer_{k}/{direction}/``: what every array and weight of it starts with."""
    return f"{layer_name(layer)}/" + (f"{direction}/" if direction else "")


def array_name(layer: int, part: str, direction: str = "") -> str:
    """``layer_{k}/[{direction}/]{part}``, e.g. ``array_name(0, "c", "fw") == "layer_0/fw/c"``."""
    return layer_prefix(layer, direction) + part


def gate_part(gate: str) -> str:
    """The part name of a gate's activations: ``gates/{gate}``."""
    return f"gates/{gate}"


GATE_PARTS = tuple(gate_part(g) for g in GATES)


def gate_name(layer: int, gate: str, direction: str = "") -> str:
    """``layer_{k}/[{direction}/]gates/{gate}``."""
    return array_name(layer, gate_part(gate), direction)


@dataclass(frozen=True)
class ArrayName:
    """A parsed ``layer_{k}/[{direction}/]{part}`` name; ``str()`` gives it back."""

    layer: int
    part: str
    direction: str = ""

    @property
    def gate(self) -> str | None:
        """The gate of a ``gates/{gate}`` part, else None."""
        return GATES[GATE_PARTS.index(self.part)] if self.part in GATE_PARTS else None

    def __str__(self) -> str:
        return array_name(self.layer, self.part, self.direction)


def parse_array_name(name: str) -> ArrayName | None:
    """The parts of a layer's array or weight name; None for other names (`input`, `output`)."""
    match = _ARRAY.fullmatch(name)
    return ArrayName(int(match[1]), match[3], match[2] or "") if match else None


def layer_count(array_names) -> int:
    """How many layers the `layer_{k}/...` names among `array_names` (arrays or weights) belong to."""
    return len({parsed.layer for name in array_names if (parsed := parse_array_name(name))})


def layer_metric(layer: int, statistic: str) -> str:
    """``layer_{k}.{statistic}``, e.g. ``layer_metric(1, H_NORM) == "layer_1.h_norm"``."""
    return f"{layer_name(layer)}.{statistic}"


def parse_layer_metric(name: str) -> tuple[int, str] | None:
    """(k, statistic) of a ``layer_{k}.{statistic}`` metric; None for other metrics."""
    match = _LAYER_METRIC.fullmatch(name)
    return (int(match[1]), match[2]) if match else None


def layer_metrics(names, statistic: str) -> list[str]:
    """The ``layer_{k}.{statistic}`` names among `names`, by layer (layer_2 before layer_10)."""
    found = {}
    for name in names:
        parsed = parse_layer_metric(name)
        if parsed and parsed[1] == statistic:
            found[parsed[0]] = name
    return [found[k] for k in sorted(found)]


def timing_metric(name: str) -> str:
    """The metric of one of the runner's timings: ``timing/{name}``, or the name itself for
    `UNPREFIXED_TIMINGS` (the UI groups metrics by the prefix before "/")."""
    return name if name in UNPREFIXED_TIMINGS else TIMING_GROUP + name


def is_grouped_timing(name: str) -> bool:
    """True for a ``timing/...`` metric (it says nothing of the states)."""
    return name.startswith(TIMING_GROUP)
