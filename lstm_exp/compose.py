"""Composing the real Hydra config outside the CLI (notebooks, tests, rerun)."""

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from lstm_exp.schema import register

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose(*overrides: str, return_hydra_config: bool = False) -> DictConfig:
    """Composes `conf/config.yaml` with command-line style overrides.

    Example:
        >>> compose("model=stacked", "seed=3").model.units
        [4, 5]
    """
    register()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
