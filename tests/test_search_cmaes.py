"""`hydra.sweeper.sampler=cmaes`: a real CMA-ES study (Optuna's CmaEsSampler on the `cmaes` package).

CmaEsSampler samples the first trial (its one startup trial, nothing completed yet) with its independent
sampler; from then on each trial it samples itself carries its CMA-ES generation in the trial's system
attributes (`cma:generation`: Optuna's own record of which sampler chose the point). A space of choices
only has nothing CMA-ES can sample: refused at the edge.
"""

import optuna
import pytest
from conftest import error_lines, run_cli
from hydra.core.override_parser.overrides_parser import OverridesParser

from lstm_exp import compose
from lstm_exp.config.search_settings import check_sampler_fits
from lstm_exp.config.search_space import parse_search
from lstm_exp.errors import ConfigError

TINY = ("task=adding", "task.epochs=2", "task.train_size=64", "task.val_size=32", "model.units=[4]")
GENERATION = "cma:generation"  # CmaEsSampler's trial system attribute (no margin, not separable)


def _search(*overrides, cwd):
    return run_cli("-m", "hydra/sweeper=search", "hydra.sweeper.sampler=cmaes", *TINY, *overrides,
                   f"hydra.sweep.dir={cwd / 'sweep'}", cwd=cwd)


@pytest.mark.slow
def test_cmaes_samples_float_and_int_intervals(tmp_path):
    proc = _search("hydra.sweeper.n_trials=4", "hydra.sweeper.seed=0", "hydra.sweeper.pruner=none",
                   "task.learning_rate=tag(log, interval(1e-3, 1e-1))", "task.batch_size=range(8,33,8)",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from lstm_exp.jobs.study import open_storage

    storage = open_storage(str(tmp_path / "optuna_journal.log"))
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert GENERATION not in study.trials[0].system_attrs  # the startup trial: independent sampler
    assert all(GENERATION in t.system_attrs for t in study.trials[1:]), [t.system_attrs for t in study.trials]
    for trial in study.trials:
        assert 1e-3 <= trial.params["task.learning_rate"] <= 1e-1
        assert trial.params["task.batch_size"] in (8, 16, 24, 32)


@pytest.mark.parametrize("arguments", [
    ["model.cell=lstm,gru"],
    ["model.cell=choice(lstm,gru)", "model.units=choice([4],[8])"],
    ["task.learning_rate=0.1,0.01"],  # a plain list of numbers is a choice, not an interval
])
def test_cmaes_without_an_interval_is_refused_naming_the_sampler(arguments):
    space, _ = parse_search(OverridesParser.create(), arguments, compose("task=adding"))
    with pytest.raises(ConfigError) as refused:
        check_sampler_fits("cmaes", space)
    assert str(refused.value).startswith("hydra.sweeper.sampler must be tpe or random")
    assert str(refused.value).endswith("Received: hydra.sweeper.sampler='cmaes'")
    check_sampler_fits("tpe", space)
    check_sampler_fits("random", space)


@pytest.mark.slow
def test_cmaes_search_of_choices_only_exits_2_with_one_line(tmp_path):
    proc = _search("model.cell=lstm,gru", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("error: hydra.sweeper.sampler must be"), lines
    assert "'cmaes'" in lines[0]
    assert not (tmp_path / "optuna_journal.log").exists()  # refused before the study
