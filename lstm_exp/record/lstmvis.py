"""A run's states in the files LSTMVis (Strobelt et al. 2018) reads: HDF5 arrays, a word dictionary,
and `lstm.yml`.

    states.h5   layer_{k}/c, layer_{k}/h   (N·T, units) float32: row n·T + t is batch row n at step t
                                           (row-major batch × time, the same values as states.npz)
    words.h5    word_ids                    (N·T,) int: the word of each of those rows
    words.dict  one "word id" line per word, ids from 1 (LSTMVis' own `txt_to_hdf5_dict.py`)
    lstm.yml    files, word_sequence, states with a `types` entry per layer and type: c as
                `type: state`, h as `type: output` with `transform: none` (h is already o·tanh(c);
                LSTMVis would otherwise apply tanh to it again); LSTMVis counts layers from 1

Our inputs are vectors of numbers, not tokens. The "word" of a step is the sign of each input channel
at that step, one character per channel: `+`, `-` or `0`. For `flipflop` this is exactly the task's
symbol (`+0-`: a +1 pulse on channel 0, a -1 pulse on channel 2), for `copy` the one-hot symbol (the
position of the `+`); for continuous inputs (`adding`'s values, `sine`) it is a coarse quantisation.
The cell state c comes from the recorded gates (c_t = f_t c_{t-1} + i_t g_t from zeros), since
`states.npz` records only the final c; the h rows are states.npz's `layer_{k}/sequence` bit for bit.
"""

from pathlib import Path

import numpy as np

from lstm_exp.config import names

STATES_FILE, WORDS_FILE, DICT_FILE, CONFIG_FILE = "states.h5", "words.h5", "words.dict", "lstm.yml"
WORD_IDS = "word_ids"


def step_words(x: np.ndarray) -> np.ndarray:
    """(B, T, F) inputs -> (B·T,) words: one `+`/`-`/`0` per channel, rows major."""
    flat = x.reshape(-1, x.shape[-1])
    signs = np.where(flat > 0, "+", np.where(flat < 0, "-", "0"))
    return np.array(["".join(row) for row in signs])


def write_lstmvis(folder: Path, x: np.ndarray, states: dict[str, np.ndarray], name: str,
                  description: str) -> list[Path]:
    """Writes the four files into `folder` (which must exist); returns them.

    Args:
        x: the recorded input (B, T, F).
        states: per layer k, `layer_{k}/h` and, for LSTM layers, `layer_{k}/c`, each (B, T, units).
        name, description: shown by LSTMVis.
    """
    import h5py
    import yaml

    words = step_words(x)
    vocabulary = sorted(set(words))
    ids = {word: n + 1 for n, word in enumerate(vocabulary)}
    with h5py.File(folder / STATES_FILE, "w") as file:
        for array_name, values in states.items():
            file.create_dataset(array_name, data=values.reshape(-1, values.shape[-1]))
    with h5py.File(folder / WORDS_FILE, "w") as file:
        file.create_dataset(WORD_IDS, data=np.array([ids[w] for w in words], dtype=np.int64))
    (folder / DICT_FILE).write_text("".join(f"{word} {ids[word]}\n" for word in vocabulary))
    types = []
    for array_name in states:
        parsed = names.parse_array_name(array_name)
        entry = {"type": "state" if parsed.part == names.C else "output", "layer": parsed.layer + 1,
                 "path": array_name}
        types.append(entry if parsed.part == names.C else {**entry, "transform": "none"})
    config = {"name": name, "description": description,
              "files": {"states": STATES_FILE, "words": WORDS_FILE, "words_dict": DICT_FILE},
              "word_sequence": {"file": "words", "path": WORD_IDS, "dict_file": "words_dict"},
              "states": {"file": "states", "types": types}}
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    return [folder / f for f in (STATES_FILE, WORDS_FILE, DICT_FILE, CONFIG_FILE)]
