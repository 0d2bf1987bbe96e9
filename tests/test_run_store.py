"""Both stores answer every request of `RunStore`, the interface `RunRecord` uses (no probing)."""

from lstm_exp.record.local_store import LocalStore
from lstm_exp.record.recorder import RecorderStore
from lstm_exp.record.run_store import RunStore


def test_both_stores_define_every_request_of_the_interface():
    # Each defines its own: an inherited request would be the protocol's empty body, answering None.
    requests = {name for name in vars(RunStore) if not name.startswith("_")}
    assert requests == {"begin_open", "finish_open", "log", "log_checkpoint", "log_summary", "end"}
    for store in (LocalStore, RecorderStore):
        assert requests - set(vars(store)) == set(), store.__name__
