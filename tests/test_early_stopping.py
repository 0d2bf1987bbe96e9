"""Early stopping (`compute/early_stopping.py`) against Keras' own `EarlyStopping` callback, both driven
by the same val_loss histories: the same epoch to stop at, the same best epoch, the same weights kept.

Keras' callback runs for real: `set_model` on a stand-in model that records `stop_training` and hands
out (and takes back) its "weights", which here are the epoch they were taken at.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget

from lstm_exp.compute.early_stopping import EarlyStopping


class _Model:
    """What EarlyStopping touches of a model: stop_training and get/set_weights."""

    def __init__(self):
        self.stop_training, self.epoch, self.restored = False, None, None

    def get_weights(self):
        return [np.array(self.epoch)]

    def set_weights(self, weights):
        self.restored = int(weights[0])


def _keras(history, patience, min_delta, restore):
    """(stopped epoch or None, best epoch, restored epoch or None) as `model.fit()` would end."""
    import keras

    callback = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=patience,
                                             min_delta=min_delta, restore_best_weights=restore)
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    stopped = None
    for epoch, loss in enumerate(history):  # fit's loop: the flag is read after each epoch's callbacks
        model.epoch = epoch
        callback.on_epoch_end(epoch, {"val_loss": loss})
        if model.stop_training:
            stopped = epoch
            break
    callback.on_train_end()
    return stopped, callback.best_epoch, model.restored


def _ours(history, patience, min_delta, restore, roundtrip_at=None):
    stopping = EarlyStopping(patience, min_delta, restore)
    stopped = None
    for epoch, loss in enumerate(history):
        if epoch == roundtrip_at:  # as a checkpoint would carry it across a restart
            stopping = EarlyStopping.from_dict(stopping.to_dict())
        if stopping.update(epoch, loss, lambda e=epoch: [np.array(e)]):
            stopped = epoch
            break
    restored = None if stopping.best_weights is None else int(stopping.best_weights[0])
    assert stopped == stopping.stopped_epoch
    return stopped, stopping.best_epoch, restored


# Losses from a small grid make ties and near-ties (within min_delta) common; NaN and inf appear too.
_LOSS = st.one_of(st.sampled_from([0.5, 0.4, 0.3, 0.29, 0.2, 1.0, math.nan, math.inf]),
                  st.floats(0, 2, allow_nan=False))


@budget(300)
@given(history=st.lists(_LOSS, min_size=1, max_size=25), patience=st.integers(1, 6),
       min_delta=st.sampled_from([0.0, 0.01, 0.1, 0.5]), restore=st.booleans(), data=st.data())
def test_stops_where_keras_stops(history, patience, min_delta, restore, data):
    roundtrip_at = data.draw(st.integers(0, len(history)))
    expected = _keras(history, patience, min_delta, restore)
    assert _ours(history, patience, min_delta, restore) == expected
    assert _ours(history, patience, min_delta, restore, roundtrip_at) == expected


@pytest.mark.parametrize("history, patience, min_delta, stopped, best", [
    ([1.0, 0.9, 0.95, 0.96, 0.97], 2, 0.0, 3, 1),  # two epochs without improvement after the best
    ([1.0, 0.9, 0.88, 0.87], 1, 0.05, 2, 1),  # 0.88 is within min_delta of 0.9: no improvement
    ([1.0, 0.9, 0.8, 0.7], 1, 0.0, None, 3),  # always improving: never stops
    ([1.0], 1, 0.0, None, 0),  # never after the first epoch
])
def test_known_histories(history, patience, min_delta, stopped, best):
    assert _ours(history, patience, min_delta, False)[:2] == (stopped, best)
    assert _keras(history, patience, min_delta, False)[:2] == (stopped, best)


def test_state_is_plain_and_round_trips():
    stopping = EarlyStopping(3, 0.01, True)
    for epoch, loss in enumerate([1.0, 0.5, 0.7]):
        stopping.update(epoch, loss, lambda e=epoch: [np.full(2, e, np.float32)])
    state = stopping.to_dict()
    assert {k: v for k, v in state.items() if k != "best_weights"} == {
        "patience": 3, "min_delta": 0.01, "restore_best_weights": True, "best": 0.5, "best_epoch": 1,
        "wait": 1, "stopped_epoch": None}
    np.testing.assert_array_equal(state["best_weights"][0], [1.0, 1.0])
    again = EarlyStopping.from_dict(state)
    assert again.to_dict()["best"] == 0.5 and again.best_weights[0] is not stopping.best_weights[0]
