"""A stop is a stop, whatever a library makes of its exception.

The SIGTERM handler raises `Terminated` wherever Python happens to be; inside a C extension's
initialisation pybind11 turns it into an ImportError (seen importing Keras' `optree` in a sweep
stopped while its job loaded TensorFlow: the job failed with "you need to have optree installed",
and the sweep went on to the next job). Real signals, a real SQLite store; the library that
converts is a two-line stand-in for pybind11's wrapping.
"""

import os
import signal

import pytest
from mlflow.tracking import MlflowClient

from lstm_exp.record.local_store import LocalStore
from lstm_exp.record.run_record import OpenRequest, RunRecord, Terminated, signals_kept


def _library_that_converts_the_signal():
    """What pybind11 does to an exception raised while an extension initialises."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, in this frame
    except BaseException as error:  # noqa: BLE001 - as the extension's wrapper does
        raise ImportError("initialization failed") from error


def test_a_sigterm_made_into_another_error_still_ends_the_block_as_terminated():
    with pytest.raises(Terminated) as stopped, signals_kept():
        _library_that_converts_the_signal()
    assert isinstance(stopped.value.__cause__, ImportError)


@pytest.mark.slow
def test_a_run_stopped_while_it_loads_ends_killed_and_the_stop_goes_on(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    request = OpenRequest(uri, "stops", 15.0, {}, "job")
    with pytest.raises(Terminated):
        RunRecord.open(LocalStore(), request, meanwhile=_library_that_converts_the_signal)
    (run,) = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("stops").experiment_id])
    assert run.info.status == "KILLED"
    assert run.data.tags["lstm_exp.error"].startswith("terminated (SIGTERM")


def test_a_run_stopped_while_it_computes_ends_killed_and_the_stop_goes_on(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    record = RunRecord.open(LocalStore(), OpenRequest(uri, "stops", 15.0, {}, "job"))
    with pytest.raises(Terminated) as stopped, record:
        _library_that_converts_the_signal()
    assert isinstance(stopped.value.__cause__, ImportError)
    assert MlflowClient(uri).get_run(record.run_id).info.status == "KILLED"
