"""The search sweeper, `-m hydra/sweeper=search`: an Optuna study whose trials are jobs.

The work is in `lstm_exp.jobs.search`; options in `conf/hydra/sweeper/search.yaml`; Hydra learns the
class from `lstm_exp.cli.plugins`. Imported at every start, so it imports nothing heavy.
"""

from collections.abc import Mapping

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class LstmExpSearchSweeper(Sweeper):
    """Workers pulling trials from one Optuna study; checked in `config/search_settings.py`.

    Args:
        n_trials: trials the study has in total when the search ends (a resumed study counts its own).
        n_workers: workers asking for trials at once (1 with the basic launcher).
        sampler: tpe | random | cmaes.
        pruner: median | none.
        seed: the sampler's seed (None: not seeded).
        study_name: None: derived from the search space and the fixed overrides.
        storage: a journal file or a database URL; None: a journal beside the tracking database.
        params: search overrides from the config, {key: "choice(...)"}; the command line's come after.
    """

    def __init__(self, n_trials: int = 20, n_workers: int = 1, sampler: str = "tpe", pruner: str = "median",
                 seed: int | None = None, study_name: str | None = None, storage: str | None = None,
                 params: Mapping[str, str] | None = None) -> None:
        # Hydra passes the options here unchecked; they are read again from the composed config's
        # `hydra.sweeper` and checked once, at the edge (`config/search_settings.py`), so that a bad
        # value ends the search with one line instead of a traceback from this constructor.
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
        from lstm_exp.jobs.search import run_search

        return run_search(self, arguments)
