"""Hostile command lines, generated for every option of every `python -m lstm_exp.*` command: exit 0
or 2, a 2 is one `error:` line, never a traceback; a path printed is the file written; nothing recorded
is changed or left RUNNING (`dynamics` adds its one new run, FINISHED). Then the refusals one by one,
in real processes on real stores: arguments that are not UTF-8, output files in missing folders or of
unknown kinds, non-finite numbers, launcher settings out of range (refused before the sweep's parent
run opens), training data larger than `run.max_memory_gb` (refused before it is drawn), and
`weights export` by a run-id prefix.
"""

import contextlib
import os
import sqlite3
import subprocess
import sys
from unittest import mock

import pytest
from cli_hostile import (
    ANYTHING,
    NON_FINITE,
    OUT_FILES,
    RUN_REFS,
    TEXT,
    check_one_line,
    commands,
    options,
    parser_of,
    printed_paths,
    strategy_for,
)
from conftest import CLI_TIMEOUT, error_lines, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis_budget import budget

import lstm_exp
from lstm_exp.config.launcher_validate import LIMITS, validate_launcher
from lstm_exp.config.memory import TF_BASE_BYTES
from lstm_exp.errors import ConfigError

# Export folders: new, nested in a missing one, existing, unwritable (/proc), a file's name, unicode.
OUT_FOLDER_NAMES = st.sampled_from(["vis", "missing/vis", "./", "/proc/vis", "mlflow.db", "日本", "a b"])
GROUP_KEYS = st.one_of(
    st.sampled_from(["model.cell", "model", "seed", "model.cell,task.name", "nope", ",", ""]), ANYTHING)
METRICS = st.one_of(st.sampled_from(["val_loss", "reference_max_abs_err", "layer_0.forget_mean"]), ANYTHING)
# Each option's values, by command; a new option without an entry here fails the coverage test.
STRATEGIES = {
    "compare": {"runs": st.lists(RUN_REFS, max_size=3), "--experiment": ANYTHING, "--filter": ANYTHING,
                "--tracking-uri": ANYTHING, "--plot": OUT_FILES, "--group-by": GROUP_KEYS,
                "--metric": METRICS, "--direction": None},
    "report": {"run": RUN_REFS, "--group-by": GROUP_KEYS, "--metric": METRICS, "--direction": None,
               "--filter": ANYTHING, "--experiment": ANYTHING, "--tracking-uri": ANYTHING,
               "--out": OUT_FILES},
    "rerun": {"run_id": RUN_REFS, "--tracking-uri": ANYTHING},
    "dynamics": {"run_id": RUN_REFS, "--input": st.one_of(
                     st.sampled_from(["0,0,0,0,0,0", "1,-1,0,0,0,2", "0,0", "0,0,0,0,0,nan", ",,,,,", ""]),
                     ANYTHING),
                 "--n-inits": None, "--noise": None, "--max-iters": None, "--max-seconds": None,
                 "--seed": None, "--tracking-uri": ANYTHING},
    "export": {"lstmvis:run_id": RUN_REFS, "lstmvis:folder": st.one_of(OUT_FOLDER_NAMES, ANYTHING),
               "lstmvis:--tracking-uri": ANYTHING},
    "weights": {"export:run_id": RUN_REFS, "export:--layout": None, "export:--out": OUT_FILES,
                "export:--tracking-uri": ANYTHING, "export:--forget-bias": None},
    "run": {"overrides": st.just([]), "--help": None, "--hydra-help": None, "--version": None, "--cfg": None,
            "--resolve": None, "--package": st.one_of(
                st.sampled_from(["_global_", "model", "model.units", "hydra", "hydra.launcher", "[", ".."]),
                ANYTHING),
            "--run": None, "--multirun": None, "--shell-completion": None, "--config-path": ANYTHING,
            "--config-name": ANYTHING, "--config-dir": ANYTHING, "--experimental-rerun": ANYTHING,
            "--info": None},
}  # None: the generic strategy for the option's kind (its choices, a number, a flag)
LOGGING_OFF = ["hydra/job_logging=none", "hydra/hydra_logging=none", "hydra.output_subdir=null"]
# TensorFlow's base, which the estimate counts, and about 1 MB: the default run passes in milliseconds.
TINY_MEMORY_GB = f"{TF_BASE_BYTES / 2**30 + 0.001:.4f}"


def test_every_command_and_option_has_a_strategy():
    assert {"run", "compare", "rerun", "weights", "dynamics", "export"} <= set(commands())
    for command in commands():
        assert set(options(parser_of(command))) == set(STRATEGIES[command]), command


def test_the_run_flags_mirror_hydras_own():
    # Test-only use of Hydra's private parser: the mirror in cli/hydra_flags.py must not drift from it.
    from hydra._internal.utils import get_args_parser

    hydra_flags = {s for a in get_args_parser()._actions for s in a.option_strings}
    assert {s for a in parser_of("run")._actions for s in a.option_strings} == hydra_flags


@pytest.mark.parametrize("argv", [["-m", "--cfg", "hydra"], ["--run", "--info"], ["-sc", "-m"],
                                  ["--cfg", "job", "--info", "plugins"]])
def test_two_modes_at_once_are_one_line(argv, capfd):
    status, out, err = _main("run", argv, capfd)
    check_one_line(status, err)
    assert status == 2 and "one mode at a time" in err, (argv, err)


# -- one real run in a real store, then generated command lines against it -----------------------------
@pytest.fixture
def recorded(stacked_run):
    """(launch directory, run id) of this test's copy of the session's recorded run, in the directory's
    default SQLite store."""
    return stacked_run.folder, stacked_run.run_id


def _store_rows(launch) -> list[tuple]:
    """Every run's (id, status, end time) and how many params, metrics and tags it holds."""
    with contextlib.closing(sqlite3.connect(launch / "mlflow.db")) as db:
        return db.execute(
            "SELECT run_uuid, status, end_time,"
            " (SELECT count(*) FROM params p WHERE p.run_uuid = r.run_uuid),"
            " (SELECT count(*) FROM metrics m WHERE m.run_uuid = r.run_uuid),"
            " (SELECT count(*) FROM tags t WHERE t.run_uuid = r.run_uuid) FROM runs r ORDER BY run_uuid"
        ).fetchall()


def _argv(draw, command: str, run_id: str) -> list[str]:
    """A command line: some of the command's options, each with a hostile or valid value."""
    parser_options = options(parser_of(command))
    chosen = draw(st.lists(st.sampled_from(sorted(parser_options)), max_size=3, unique=True))
    argv = {"weights": ["export"], "export": ["lstmvis"]}.get(command, [])
    for name in sorted(chosen, key=lambda n: n.startswith("-") or ":-" in n):
        action = parser_options[name]
        strategy = STRATEGIES[command][name]
        strategy = strategy_for(action) if strategy is None else strategy
        flag = name.split(":")[-1]
        if action.nargs == 0:
            argv.append(flag)
            continue
        value = draw(strategy)
        values = value if isinstance(value, list) else [value]
        values = [v.replace("RUN_ID", run_id).replace("PREFIX", run_id[:6]) for v in values]
        argv += [f"{flag}={v}" for v in values] if flag.startswith("-") else values
    return argv


def _main(command: str, argv: list[str], capfd) -> tuple[int, str, str]:
    """The command's own `main` in this process, as `python -m lstm_exp.<command>` runs it."""
    capfd.readouterr()
    entry = __import__(f"lstm_exp.{command}", fromlist=["main"])
    if command == "run":
        from lstm_exp.cli import run

        # Overrides first, flags last: argparse takes the positionals only while they are contiguous.
        argv = ["tracking.enabled=false", f"run.max_memory_gb={TINY_MEMORY_GB}", *LOGGING_OFF, *argv]
        with mock.patch.object(sys, "argv", ["lstm-exp", *argv]), pytest.raises(SystemExit) as stop:
            run.main()
    else:
        with mock.patch.object(sys, "argv", [command, *argv]), pytest.raises(SystemExit) as stop:
            entry.main()
            sys.exit(0)
    out, err = capfd.readouterr()
    return stop.value.code or 0, out, err


@pytest.mark.slow
@budget(60)
@given(data=st.data())
def test_generated_command_lines_exit_0_or_2_with_one_line(recorded, monkeypatch, capfd, data):
    launch, run_id = recorded
    monkeypatch.chdir(launch)
    before = _store_rows(launch)
    files_before = {p for p in launch.rglob("*") if "mlartifacts" not in p.parts}
    command = data.draw(st.sampled_from(commands()))
    argv = _argv(data.draw, command, run_id)
    status, out, err = _main(command, argv, capfd)
    check_one_line(status, err)
    written = {p for pair in printed_paths(out) for p in pair if p}
    for path in written:
        assert os.path.isfile(path), (argv, out)
    if status == 2:
        new = {p for p in launch.rglob("*") if "mlartifacts" not in p.parts} - files_before
        assert not [p for p in new if p.suffix != ".lock"], (argv, new)
    for path in written:
        os.remove(path)
    after = _store_rows(launch)
    if command == "dynamics" and status == 0:  # its one write: a new run, FINISHED, beside the others
        added = [row for row in after if row not in before]
        assert [row[1] for row in added] == ["FINISHED"] and len(after) == len(before) + 1, (argv, added)
        after = [row for row in after if row not in added]
    assert after == before  # read-only commands changed nothing, left nothing RUNNING


# -- file names that are not UTF-8, in real processes ---------------------------------------------------
NOT_UTF8 = {  # command -> (arguments, the name the line must give)
    "run": ([b"tracking.enabled=false", b"input=file", b"input.path=\xff.npy"], "input.path"),
    "compare": ([b"--plot", b"\xff.png"], "--plot"),
    "report": ([b"--group-by", b"model.cell", b"--out", b"\xff.html"], "--out"),
    "rerun": ([b"\xff\xfe"], "argument 1"),
    "weights": ([b"export", b"RUN", b"--layout", b"torch", b"--out", b"w\xff.npz"], "--out"),
    "dynamics": ([b"RUN", b"--input", b"0,\xff"], "--input"),
    "export": ([b"lstmvis", b"RUN", b"vis\xff"], "argument 3"),
}


@pytest.mark.slow
@pytest.mark.parametrize("command", commands())
def test_arguments_that_are_not_utf8_get_one_line(recorded, command):
    launch, run_id = recorded
    args, name = NOT_UTF8[command]
    args = [a.replace(b"RUN", run_id.encode()) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable.encode(), b"-m", f"lstm_exp.{command}".encode(), *args], cwd=launch,
                          capture_output=True, timeout=CLI_TIMEOUT, env={**env, "LC_ALL": "C.UTF-8"})
    stderr = proc.stderr.decode("utf-8", "backslashreplace")
    check_one_line(proc.returncode, stderr, allowed=(2,))
    assert stderr.startswith(f"error: {name} must be valid UTF-8 text"), stderr
    assert not [p for p in os.listdir(launch) if not p.isascii()]


NPZ_ONLY = "error: --out must be a file name ending in .npz"
FINITE = "error: --forget-bias must be a finite"


# -- output files ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("args", "line"), [
    (["weights", "export", "RUN", "--layout", "torch", "--out", "missing/w.npz"],
     "error: --out must be a file in an existing folder (no folder missing)"),
    (["weights", "export", "RUN", "--layout", "torch", "--out", "w.txt"], NPZ_ONLY),
    (["weights", "export", "RUN", "--layout", "torch", "--out", "w"], NPZ_ONLY),
    (["compare", "--plot", "missing/p.png"],
     "error: --plot must be a file in an existing folder (no folder missing)"),
    (["compare", "--plot", "p.xyz"], "error: --plot must be a file name ending in .png, .pdf, .svg"),
    (["compare", "--plot", "p"], "error: --plot must be a file name ending in .png"),
    (["report", "--group-by", "model.cell", "--out", "missing/r.html"],
     "error: --out must be a file in an existing folder (no folder missing)"),
    (["report", "RUN", "--out", "r.htm"], "error: --out must be a file name ending in .html"),
    (["weights", "export", "RUN", "--layout", "tf1", "--forget-bias", "nan"], FINITE),
    (["weights", "export", "RUN", "--layout", "tf1", "--forget-bias", "1e999"], FINITE),
    (["weights", "export", "RUN", "--layout", "tf1", "--forget-bias=-inf"], FINITE),
    (["weights", "export", "RUN", "--layout", "nope"], "error: argument --layout: invalid choice"),
])
def test_bad_output_files_and_numbers_are_refused_before_anything_is_written(recorded, args, line):
    launch, run_id = recorded
    command, *rest = args
    before = set(os.listdir(launch))
    proc = run_cli(*[a.replace("RUN", run_id) for a in rest], cwd=launch, module=f"lstm_exp.{command}")
    check_one_line(proc.returncode, proc.stderr, allowed=(2,))
    assert proc.stderr.startswith(line), proc.stderr
    assert set(os.listdir(launch)) - before <= {"mlflow.db.lock"}  # no file, no folder made


@pytest.mark.slow
def test_the_printed_path_is_the_file_written(recorded, tmp_path):
    launch, run_id = recorded
    (launch / "out").mkdir(exist_ok=True)
    for module, args, name in [("weights", ["export", run_id[:6], "--layout", "torch", "--out", "out/W.NPZ"],
                                "out/W.NPZ"),
                               ("compare", ["--plot", "out/norms.SVG"], "out/norms.SVG"),
                               ("report", ["--group-by", "seed", "--out", "out/r.HTML"], "out/r.HTML")]:
        proc = run_cli(*args, cwd=launch, module=f"lstm_exp.{module}")
        assert proc.returncode == 0, proc.stderr
        assert [p for pair in printed_paths(proc.stdout) for p in pair if p] == [name]
        assert (launch / name).is_file()
    assert sorted(os.listdir(launch / "out")) == ["W.NPZ", "norms.SVG", "r.HTML"]


@pytest.mark.slow
def test_weights_export_takes_a_prefix_and_lists_an_ambiguous_ones_matches(tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("lstm_exp")
    ids = []
    for _ in range(17):  # 17 ids, 16 first hex digits: two share one
        run = client.create_run(experiment)
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    shared = next(i[0] for i in ids if sum(j[0] == i[0] for j in ids) > 1)
    proc = run_cli("export", shared, "--layout", "torch", cwd=tmp_path, module="lstm_exp.weights")
    check_one_line(proc.returncode, proc.stderr, allowed=(2,))
    matches = [i for i in ids if i.startswith(shared)]
    assert "unique prefix" in proc.stderr and all(i in proc.stderr for i in matches[:5]), proc.stderr


# -- launcher settings ----------------------------------------------------------------------------------
LAUNCHER_CASES = [
    ("joblib", "n_jobs", "0"), ("joblib", "n_jobs", "-3000"), ("joblib", "n_jobs", "1000000000"),
    ("submitit_local", "timeout_min", "-1"), ("submitit_local", "tasks_per_node", "0"),
    ("submitit_local", "mem_gb", "-1"), ("submitit_local", "cpus_per_task", "0"),
    ("slurm", "lost_job_grace_s", "-1"), ("slurm", "poll_s", "nan"), ("slurm", "poll_s", "abc"),
    ("slurm", "lost_job_grace_s", "1e999"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("launcher", "key", "value"), LAUNCHER_CASES)
def test_launcher_settings_out_of_range_are_refused_before_the_parent_run(tmp_path, launcher, key, value):
    proc = run_cli("-m", "seed=0,1", f"hydra/launcher={launcher}", f"hydra.launcher.{key}={value}",
                   cwd=tmp_path)
    check_one_line(proc.returncode, proc.stderr, allowed=(2,))
    assert proc.stderr.startswith(f"error: hydra.launcher.{key} must be"), proc.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "multirun").exists()  # no parent, no job


TEXT_LAUNCHER_KEYS = {"_target_", "submitit_folder", "name", "stderr_to_stdout", "partition", "qos",
                      "comment", "constraint", "exclude", "gres", "mem_per_gpu", "mem_per_cpu", "account",
                      "setup",
                      "additional_parameters", "backend", "prefer", "require", "pre_dispatch", "temp_folder",
                      "max_nbytes", "mmap_mode", "n_jobs", "batch_size"}
LAUNCHERS = ["joblib", "submitit_local", "submitit_slurm", "slurm"]


def _launcher(name: str, *overrides: str):
    return lstm_exp.compose(f"hydra/launcher={name}", *overrides, return_hydra_config=True).hydra.launcher


@pytest.mark.parametrize("name", LAUNCHERS)
def test_every_launcher_setting_is_checked_or_text(name):
    assert set(_launcher(name)) - set(LIMITS) - TEXT_LAUNCHER_KEYS == set()
    validate_launcher(_launcher(name))  # the defaults pass


@pytest.mark.slow
@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(name=st.sampled_from(LAUNCHERS), data=st.data())
def test_generated_launcher_settings_pass_only_within_range(name, data):
    keys = sorted(k for k in _launcher(name) if k in LIMITS or k in ("n_jobs", "batch_size"))
    key = data.draw(st.sampled_from(keys))
    value = data.draw(st.one_of(st.sampled_from(NON_FINITE + ["0", "-1", "1", "null", "1e9", "2**31", "''"]),
                                st.integers(-(10**12), 10**12).map(str), st.floats().map(str), TEXT))
    try:
        launcher = _launcher(name, f"hydra.launcher.{key}={value}")
    except Exception:  # noqa: BLE001 - the schema's own type refuses it: one line via cli/run.py
        return
    try:
        validate_launcher(launcher)
    except ConfigError as error:
        assert str(error).startswith(f"hydra.launcher.{key} must be") and "\n" not in str(error)
        return
    got = launcher[key]
    if key in LIMITS and got is not None:
        assert LIMITS[key].low <= got <= LIMITS[key].high


@pytest.mark.parametrize(("key", "value"), [
    ("backend", "nope"), ("prefer", "nope"), ("require", "nope"), ("mmap_mode", "zz"),
    ("pre_dispatch", "-3"), ("pre_dispatch", "0"), ("pre_dispatch", "n_jobs**99"), ("pre_dispatch", "''"),
    ("max_nbytes", "nope"), ("max_nbytes", "-1M"),
])
def test_joblib_words_out_of_their_choices_are_one_line(key, value):
    # Each of these reached joblib's own ValueError traceback, after the sweep's parent run had opened.
    with pytest.raises(ConfigError) as refused:
        validate_launcher(_launcher("joblib", f"hydra.launcher.{key}={value}"))
    assert str(refused.value).startswith(f"hydra.launcher.{key} must be ")


@pytest.mark.parametrize("overrides", [
    ("hydra.launcher.backend=threading", "hydra.launcher.prefer=threads", "hydra.launcher.require=sharedmem"),
    ("hydra.launcher.pre_dispatch=all", "hydra.launcher.max_nbytes=1M", "hydra.launcher.mmap_mode=r+"),
    ("hydra.launcher.pre_dispatch='3*n_jobs'", "hydra.launcher.max_nbytes=1000",
     "hydra.launcher.prefer=processes"),
])
def test_joblib_words_within_their_choices_pass(overrides):
    validate_launcher(_launcher("joblib", *overrides))


@pytest.mark.slow
def test_a_joblib_word_out_of_its_choices_starts_nothing(tmp_path):
    proc = run_cli("-m", "hydra/launcher=joblib", "hydra.launcher.prefer=nope", "seed=0,1", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert error_lines(proc) == ["error: hydra.launcher.prefer must be one of processes, threads. "
                                 "Received: hydra.launcher.prefer='nope'"]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "multirun").exists()


# -- training data against run.max_memory_gb ------------------------------------------------------------
# Runs the CLI as its only child (killed after CLI_TIMEOUT s, so that a regression leaves no run behind)
# and prints that child's peak RSS in KiB as the last line of stderr.
MEASURE = (
    "import resource, subprocess, sys\n"
    "try:\n"
    "    status = subprocess.run([sys.executable, '-m', 'lstm_exp.run', *sys.argv[1:]],\n"
    f"                            timeout={CLI_TIMEOUT}).returncode\n"
    "except subprocess.TimeoutExpired:\n"
    "    status = 124\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(status)\n"
)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    ["task=flipflop", "task.train_size=80000", "task.timesteps=1000"],  # ~10 GB to draw, default 8 GB limit
    ["task=adding", "task.train_size=200000", "task.timesteps=100", "run.max_memory_gb=0.2"],
    ["task=sine", "task.batch_size=4096", "task.train_size=8192", "model.units=[512]", "run.max_memory_gb=1"],
])
def test_training_larger_than_max_memory_is_refused_before_drawing(tmp_path, overrides):
    proc = subprocess.run([sys.executable, "-c", MEASURE, "tracking.enabled=false", *overrides], cwd=tmp_path,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT + 60)
    *lines, peak_kib = proc.stderr.strip().splitlines()
    check_one_line(proc.returncode, "\n".join(lines), allowed=(2,))
    refusal = "error: task.train_size must be a size whose training fits in run.max_memory_gb"
    assert lines[0].startswith(refusal), proc.stderr
    assert "task.timesteps=" in lines[0] and "model.units=" in lines[0]
    assert int(peak_kib) / 1024 < 400, "allocated before refusing"


def test_the_training_estimate_covers_the_default_tasks():
    from lstm_exp.config.task_memory import training_bytes
    from lstm_exp.config.validate import validate_model

    for task in ("adding", "copy", "flipflop", "sine"):
        cfg = lstm_exp.compose("tracking.enabled=false", f"task={task}")
        assert 0 < training_bytes(cfg.task, validate_model(cfg.model)) < 8 * 2**30  # the default limit


def _peak_mib(tmp_path, overrides: list[str]) -> float:
    args = ["tracking.enabled=false", "task.epochs=1", *overrides]
    proc = subprocess.run([sys.executable, "-c", MEASURE, *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT + 60)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1]) / 1024


@pytest.mark.slow
def test_the_training_estimate_is_above_the_memory_a_real_run_takes(tmp_path):
    from lstm_exp.config.task_memory import training_bytes
    from lstm_exp.config.validate import validate_model

    sizes = ["task=flipflop", "task.timesteps=100", "task.batch_size=1024", "model.units=[4]"]
    tiny = _peak_mib(tmp_path, [*sizes, "task.train_size=1024", "task.val_size=64"])
    large = [*sizes, "task.train_size=50000", "task.val_size=1000"]
    added = _peak_mib(tmp_path, large) - tiny
    cfg = lstm_exp.compose("tracking.enabled=false", *large)
    estimate = training_bytes(cfg.task, validate_model(cfg.model)) / 2**20
    assert added > 100, added  # the data did show up in the run's memory
    assert estimate >= added, f"estimate {estimate:.0f} MiB; the run took {added:.0f} MiB over a tiny one"
