"""Typed schema of the configuration, registered in Hydra's ConfigStore.

The YAML files under ``conf/`` are thin layers over these dataclasses: OmegaConf rejects unknown
keys and wrong types at composition time, and ``config.validate`` checks the values.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from lstm_exp.config import slurm_schema
from lstm_exp.config.sweep_schema import SweepConfig
from lstm_exp.config.task_schema import TaskConfig


@dataclass
class WeightsConfig:
    path: str | None = None  # None: fresh weights drawn from `seed`
    layout: str = "auto"  # auto | keras | tf1 | torch
    forget_bias: float = 1.0  # TF1's runtime forget bias, folded into the bias on tf1 import


@dataclass
class ModelConfig:
    name: str = "basic"
    cell: str = "lstm"  # lstm | gru | simple_rnn
    units: list[int] = field(default_factory=lambda: [4])
    bidirectional: bool = False
    peepholes: bool = False  # TF1 LSTMCell(use_peepholes=True)
    cell_clip: float | None = None  # TF1 LSTMCell(cell_clip=...)
    proj_size: int | None = None  # TF1 num_proj, PyTorch proj_size
    proj_clip: float | None = None  # TF1 LSTMCell(proj_clip=...)
    implementation: str = "auto"  # auto | keras | fused | native
    weights: WeightsConfig = field(default_factory=WeightsConfig)


@dataclass
class InputConfig:
    name: str = "tutorial_step"
    values: Any = None  # literal nested list: (B, F) one step, or (B, T, F)
    batch: int = 2
    timesteps: int = 3
    features: int = 6
    distribution: str = "normal"  # normal | uniform
    path: str | None = None  # .npy / .npz / .csv
    lengths: list[int] | None = None  # per-row valid lengths, TF1 dynamic_rnn semantics
    initial_state: str = "zeros"  # zeros | random | path to .npz


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None  # None: sqlite:///<launch dir>/mlflow.db
    experiment: str = "lstm_exp"
    run_name: str | None = None
    timeout_s: float = 15.0  # bound on reaching a tracking server before any computation
    log_model: bool = False  # also log the stack as the run's MLflow model `model` (a Keras file)


@dataclass
class RunConfig:
    repeat: int = 0  # timed forward passes after a warm-up; 0 = none
    max_memory_gb: float = 8.0  # refuse configs whose arrays would need more
    print_arrays: bool = False  # in a sweep, also print each job's arrays (a single run always does)


@dataclass
class AnalysisConfig:
    fixed_points: bool = False  # also find and log the fixed points of the LSTM stack (config/analysis.py)
    input: list[float] | None = None  # the constant input while stepping; None: zeros


@dataclass
class ExperimentConfig:
    seed: int = 0
    dry_run: bool = False  # print expected shapes from the config alone
    resume: bool = False  # in a sweep: skip jobs already FINISHED with the same config hash
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    run: RunConfig = field(default_factory=RunConfig)
    task: TaskConfig = field(default_factory=TaskConfig)  # `none`: no training
    sweep: SweepConfig = field(default_factory=SweepConfig)  # a -m sweep's groups and verdict
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)


def register() -> None:
    """Registers the schema so that ``conf/config.yaml`` can build on it, and `hydra/launcher=slurm`."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=ExperimentConfig)
    slurm_schema.register()
