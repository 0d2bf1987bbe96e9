"""The validated experiment as typed, frozen values: what `experiment.parse` returns.

Each spec holds one section of the config after validation, so that a function below the edge takes
the smallest piece it needs (`load_sequences(experiment.input, ...)`) and never the whole tree.
"""

from dataclasses import dataclass

from lstm_exp.config import names


@dataclass(frozen=True)
class ModelSpec:
    """The validated model section: what the engines and `reference.py` build from."""

    cell: str
    units: tuple[int, ...]
    bidirectional: bool = False
    peepholes: bool = False
    cell_clip: float | None = None
    proj_size: int | None = None
    proj_clip: float | None = None
    implementation: str = "auto"

    @property
    def has_extras(self) -> bool:
        """True when the TF1 LSTMCell extras need the custom cell instead of keras.layers.LSTM."""
        return bool(self.peepholes or self.cell_clip or self.proj_size or self.proj_clip)

    @property
    def plain_lstm_stack(self) -> bool:
        """A unidirectional LSTM stack without the TF1 extras: what the fused and native engines compute."""
        return self.cell == "lstm" and not self.has_extras and not self.bidirectional

    @property
    def plain_gru_stack(self) -> bool:
        """A unidirectional GRU stack: what the native op also trains (`training_engine.py`)."""
        return self.cell == "gru" and not self.bidirectional

    @property
    def native_stack(self) -> bool:
        """A stack the native ops compute, forward and training: a plain LSTM or GRU stack."""
        return self.plain_lstm_stack or self.plain_gru_stack

    @property
    def directions(self) -> tuple[str, ...]:
        """One layer's directions: ``("",)``, or ``("fw", "bw")`` when bidirectional."""
        return names.directions(self.bidirectional)

    def hidden_size(self, k: int) -> int:
        """Size of one direction's h of layer k (the projection size where there is one)."""
        return self.proj_size or self.units[k]

    def output_size(self, k: int) -> int:
        """Feature size of layer k's output sequence (both directions concatenated)."""
        return self.hidden_size(k) * (2 if self.bidirectional else 1)


@dataclass(frozen=True)
class WeightsSpec:
    """`model.weights`: where the starting weights come from."""

    path: str | None  # None: fresh weights drawn from the seed
    layout: str  # auto | keras | tf1 | torch
    forget_bias: float  # TF1's runtime forget bias, folded into the bias on tf1 import


@dataclass(frozen=True)
class InputSpec:
    """`input.*` with its scalar settings checked (the arrays are checked as they are read)."""

    name: str
    values: list | None  # a literal nested list, as plain Python
    batch: int
    timesteps: int
    features: int
    distribution: str
    path: str | None
    lengths: tuple[int, ...] | None
    initial_state: str  # zeros | random | an .npz path

    @property
    def planned_shape(self) -> tuple[int, int, int] | None:
        """(B, T, F) of a drawn input, known before anything is read; None for values and files."""
        if self.values is None and self.path is None:
            return self.batch, self.timesteps, self.features
        return None


@dataclass(frozen=True)
class ControlsSpec:
    """The training controls of `task.*`; the defaults change nothing (see `task_schema.py`)."""

    patience: int = 0  # 0: no early stopping
    min_delta: float = 0.0
    restore_best_weights: bool = False
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    schedule: str = "constant"  # constant | cosine | step
    warmup_epochs: int = 0
    step_size: int = 10
    step_factor: float = 0.5
    weight_decay: float = 0.0

    @property
    def scheduled(self) -> bool:
        """True when the learning rate changes from epoch to epoch."""
        return self.schedule != "constant" or self.warmup_epochs > 0


@dataclass(frozen=True)
class TaskSpec:
    """`task.*` of a run that trains first (`task=none` has no TaskSpec).

    For `task=file` the sizes (timesteps, train_size, val_size) are the file's, known once it is read:
    here they are 0.
    """

    name: str  # adding | copy | flipflop | sine | file
    timesteps: int
    train_size: int
    val_size: int
    epochs: int
    batch_size: int
    learning_rate: float
    copy_length: int
    symbols: int
    pulse_prob: float
    path: str | None = None  # file: the .npz
    val_fraction: float = 0.2  # file without x_val
    classes: int | None = None  # file with integer y; None: the largest label + 1
    controls: ControlsSpec = ControlsSpec()
    checkpoint_every: int = 1  # epochs between checkpoints (and one after the last)
    resume_from: str | None = None  # a run id: go on from its last checkpoint


@dataclass(frozen=True)
class RunSpec:
    """`run.*`: how the forward pass is timed and how much memory a run may take."""

    repeat: int  # timed forward passes after a warm-up; 0 = none
    max_memory_gb: float
    print_arrays: bool

    @property
    def memory_budget(self) -> int:
        """`max_memory_gb` in bytes: what a file's arrays may take, checked before reading."""
        return int(self.max_memory_gb * 2**30)


@dataclass(frozen=True)
class TrackingSpec:
    """`tracking.*`: whether and where the run is recorded."""

    enabled: bool
    uri: str | None  # None: sqlite:///<launch dir>/mlflow.db
    experiment: str
    run_name: str | None
    timeout_s: float
    log_model: bool


@dataclass(frozen=True)
class AnalysisSpec:
    """`analysis.*`: the fixed-point analysis added to a run (`config/analysis.py`)."""

    fixed_points: bool = False
    input: tuple[float, ...] | None = None  # the constant input; None: zeros


@dataclass(frozen=True)
class Experiment:
    """One validated configuration: every value a job needs, and nothing it would have to re-check."""

    seed: int
    dry_run: bool
    resume: bool
    model_name: str  # the `model` config's name, for reports and tags
    model: ModelSpec
    weights: WeightsSpec
    input: InputSpec
    task: TaskSpec | None  # None: forward pass only
    run: RunSpec
    tracking: TrackingSpec
    analysis: AnalysisSpec = AnalysisSpec()

    @property
    def input_name(self) -> str:
        """The input's name; with a task, the task's held-out batch is what the states come from."""
        return self.input.name if self.task is None else f"held-out batch of task {self.task.name}"
