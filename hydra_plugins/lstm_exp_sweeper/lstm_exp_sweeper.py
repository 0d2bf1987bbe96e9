"""The sweeper `conf/config.yaml` selects: a grid sweep, recorded as one MLflow parent run.

Hydra instantiates sweepers only from the `hydra_plugins` package; the work is in `lstm_exp.jobs.sweep`
(the jobs in `lstm_exp.jobs.sweep_grid`). Its options are `conf/hydra/sweeper/lstm_exp.yaml`; Hydra
learns the class from `lstm_exp.cli.plugins`. Imported at every start, so it imports nothing heavy.
"""

from collections.abc import Mapping

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LstmExpSweeper(Sweeper):
    """The jobs of Hydra's basic sweeper (the grid), inside one MLflow parent run with a summary.

    Args:
        max_batch_size: at most this many jobs go to the launcher at once (None: all of them).
        params: sweep overrides from the config, {key: "a,b"}; the command line's come after them.
    """

    def __init__(self, max_batch_size: int | None = None, params: Mapping[str, str] | None = None) -> None:
        self.max_batch_size = max_batch_size
        self.params = params or {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list:
        from lstm_exp.jobs.sweep import run_sweep

        return run_sweep(self, arguments)
