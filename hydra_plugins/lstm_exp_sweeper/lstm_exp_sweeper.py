"""The sweeper `conf/config.yaml` selects: Hydra's basic sweeper, whose `sweep` also records the sweep.

Hydra loads sweepers only from the `hydra_plugins` package; the work is in `lstm_exp.cli.sweep`.
Imported by Hydra at every start, so it imports nothing heavy.
"""

from dataclasses import dataclass

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore


@dataclass
class LstmExpSweeperConf:
    _target_: str = "hydra_plugins.lstm_exp_sweeper.lstm_exp_sweeper.LstmExpSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="lstm_exp", node=LstmExpSweeperConf,
                             provider="lstm_exp")


class LstmExpSweeper(BasicSweeper):
    """Jobs as Hydra's basic sweeper makes them, inside one MLflow parent run with a summary."""

    def sweep(self, arguments: list[str]) -> list:
        from lstm_exp.cli.sweep import run_sweep

        return run_sweep(self, arguments)
