"""The tutorial's stacked LSTM as a plain Keras 3 script: the baseline lstm_exp's timings compare to.

LSTM 4 -> LSTM 5 over the tutorial's (2, 3, 6) batch, printing each layer's final (c, h) and the
output, with nothing else: no config, no validation, no reference check, no tracking.
Usage: .venv/bin/python scripts/plain_keras_tutorial.py [MODELS]   (MODELS stacks, seeds 0.., default 1)
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

x = np.array(
    [[[1, 2, 3, 4, 3, 2], [1, 2, 1, 1, 1, 2], [1, 2, 2, 2, 2, 2]],
     [[1, 2, 3, 4, 3, 2], [3, 2, 2, 1, 1, 2], [0, 0, 0, 0, 3, 2]]],
    dtype=np.float32,
)
for seed in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
    keras.utils.set_random_seed(seed)
    seq = x
    for units in (4, 5):
        seq, h, c = keras.layers.LSTM(units, return_sequences=True, return_state=True)(seq)
        print(f"LSTM({units}) c =", np.asarray(c), "\nh =", np.asarray(h))
    print("output", tuple(seq.shape), "=\n", np.asarray(seq))
