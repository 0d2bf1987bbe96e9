"""lstm_exp against torch.nn.LSTM: its state_dict imported through `model.weights.layout=torch`."""

import re

import numpy as np
import pytest

import lstm_exp

try:  # `python -m pytest` from the repo root
    from tests.oracles.torch_oracle import torch_lstm
except ImportError:  # plain `pytest`: only tests/ is on sys.path
    from oracles.torch_oracle import torch_lstm

ATOL = 1e-5
BATCH = np.asarray(
    [
        [[1, 2, 3, 4, 3, 2], [1, 2, 1, 1, 1, 2], [1, 2, 2, 2, 2, 2]],
        [[1, 2, 3, 4, 3, 2], [3, 2, 2, 1, 1, 2], [0, 0, 0, 0, 3, 2]],
    ],
    np.float32,
)


@pytest.mark.parametrize(
    "units, proj_size, lengths, bidirectional, layout",
    [
        ([4, 5], None, [3, 2], False, "torch"),  # the tutorial's stack: one nn.LSTM per layer
        ([4, 4], 3, [3, 2], False, "auto"),  # one nn.LSTM(num_layers=2, proj_size=3)
        ([4, 5], 3, [2, 3], True, "torch"),  # weight_*_reverse into the bw direction
    ],
    ids=["stacked", "projection", "bidirectional_projection"],
)
def test_matches_torch(tmp_path, units, proj_size, lengths, bidirectional, layout):
    state_dict, expected = torch_lstm(BATCH, units, proj_size, lengths, seed=7, bidirectional=bidirectional)
    np.savez(tmp_path / "torch.npz", **state_dict)
    cfg = lstm_exp.compose(
        "model=stacked", f"model.units={units}", f"model.proj_size={proj_size or 'null'}",
        f"model.bidirectional={str(bidirectional).lower()}", f"input.lengths={lengths}",
        f"model.weights.path={tmp_path / 'torch.npz'}", f"model.weights.layout={layout}",
        "tracking.enabled=false",
    )
    result = lstm_exp.execute(cfg)
    compared = [n for n in expected if n == "output" or re.fullmatch(r"layer_\d+/((fw|bw)/)?[ch]", n)]
    worst = 0.0
    for key in compared:
        np.testing.assert_allclose(result.arrays[key], expected[key], rtol=0, atol=ATOL, err_msg=key)
        worst = max(worst, float(np.abs(result.arrays[key] - expected[key]).max()))
    print(f"max |lstm_exp - torch| = {worst:.2g} over {compared}")
    assert result.reference_max_abs_err <= 1e-6
