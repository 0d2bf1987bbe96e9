"""The grid a `-m` sweep runs (lstm_exp.jobs.sweep_grid): Hydra's basic-sweeper expansion, in batches."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from lstm_exp.errors import ConfigError
from lstm_exp.jobs.sweep_grid import job_batches, params_overrides


def _jobs(*overrides: str, max_batch_size: int | None = None, config_loader=None) -> list:
    parser = OverridesParser.create(config_loader=config_loader)
    return job_batches(parser.parse_overrides(list(overrides)), max_batch_size)


def test_the_grid_is_the_product_with_the_first_key_slowest():
    assert _jobs("a=1,2", "b=x,y", "c=3") == [[
        ["a=1", "b=x", "c=3"], ["a=1", "b=y", "c=3"], ["a=2", "b=x", "c=3"], ["a=2", "b=y", "c=3"]]]


def test_range_and_choice_expand_like_a_list():
    assert _jobs("seed=range(0,3)", "model=choice(basic,stacked)") == [[
        ["seed=0", "model=basic"], ["seed=0", "model=stacked"], ["seed=1", "model=basic"],
        ["seed=1", "model=stacked"], ["seed=2", "model=basic"], ["seed=2", "model=stacked"]]]


def test_glob_expands_to_the_groups_options():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from lstm_exp.config.compose import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        jobs = _jobs("model=glob(*,exclude=gru)", config_loader=loader)
    models = [job[0] for job in jobs[0]]
    assert "model=basic" in models and "model=stacked" in models and "model=gru" not in models


def test_no_sweep_override_is_one_job_and_no_override_too():
    assert _jobs("seed=3") == [[["seed=3"]]]
    assert _jobs() == [[[]]]


def test_params_come_first_and_the_command_line_replaces_them_in_place():
    overrides = [*params_overrides({"seed": "0,1", "model": "basic,stacked"}), "seed=5"]
    assert _jobs(*overrides) == [[["seed=5", "model=basic"], ["seed=5", "model=stacked"]]]
    assert params_overrides(None) == []


def test_max_batch_size_cuts_the_jobs_into_batches_in_order():
    batches = _jobs("seed=range(0,5)", max_batch_size=2)
    assert batches == [[["seed=0"], ["seed=1"]], [["seed=2"], ["seed=3"]], [["seed=4"]]]


@pytest.mark.parametrize("size", [0, -1, True, "2", 1.5])
def test_a_batch_size_that_is_no_positive_integer_is_refused(size):
    with pytest.raises(ConfigError, match=r"hydra.sweeper.max_batch_size must be a positive integer"):
        _jobs("seed=0,1", max_batch_size=size)


def test_an_interval_has_no_grid():
    with pytest.raises(ConfigError, match=r"seed must be .*interval\(\) needs a search sweeper. "
                                          r"Received: seed='interval\(0, 1\)'"):
        _jobs("seed=interval(0, 1)")
