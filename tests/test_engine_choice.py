"""`auto` by measurement (`compute/engine_choice.py`): timed once, kept, never slower than stock Keras.

The candidates here are plain Python calls that count how often they run; the timings themselves
are never asserted on (the machine is shared), only what is decided from given timings and what
is kept.
"""

import json
import logging

from hypothesis import given
from hypothesis import strategies as st
from hypothesis_budget import budget

from lstm_exp.compute.engine_choice import CHOICES, Choice, decide, measured_choice, read_choices, shape_class


def _counting(calls: dict, name: str):
    def run():
        calls[name] = calls.get(name, 0) + 1
    return run


def test_shape_class_rounds_every_size_up_to_a_power_of_two():
    assert shape_class("training", (32, 128, 64), (256, 256)) == "training B32 T128 F64 U256-256"
    assert shape_class("forward", (33, 100, 1), (5,)) == "forward B64 T128 F1 U8"


@given(st.dictionaries(st.sampled_from(["keras", "native", "fused"]),
                       st.floats(0.0, 1e6, allow_nan=False), min_size=1).map(lambda d: {"keras": 1.0, **d}))
@budget(50)
def test_decide_never_picks_an_engine_slower_than_stock_keras(timings):
    choice = decide(timings)
    assert timings[choice.engine] <= timings["keras"]
    assert choice.engine == "keras" or timings[choice.engine] < timings["keras"]
    assert choice.engine == min(timings, key=lambda n: (timings[n], n != "keras"))


def test_ties_go_to_stock_keras():
    assert decide({"keras": 5.0, "native": 5.0}).engine == "keras"
    assert decide({"keras": 5.0, "native": 4.0}) == Choice("native", "measured 4.0 ms vs keras 5.0 ms")


@given(st.floats(0.1, 1e4), st.floats(0.0, 2.0), st.floats(0.0, 0.5))
@budget(50)
def test_a_lead_keeps_the_baseline_unless_another_is_clearly_faster(baseline_ms, ratio, lead):
    # The native op's thread split: `columns` replaces `rows` only when faster by more than `lead`.
    choice = decide({"rows": baseline_ms, "columns": baseline_ms * ratio}, "rows", lead)
    assert choice.engine == ("columns" if ratio < 1.0 - lead else "rows")


def test_a_lead_is_named_in_why():
    kept = decide({"rows": 15.65, "columns": 14.90}, "rows", 0.10)  # 4.8 % faster: not clearly
    assert kept == Choice("rows", "measured 15.7 ms vs columns 14.9 ms (another needs a 10% lead)")
    assert decide({"rows": 15.65, "columns": 14.0}, "rows", 0.10).engine == "columns"


def test_measured_once_then_kept(tmp_path):
    calls = {}
    candidates = {"keras": _counting(calls, "keras"), "native": _counting(calls, "native")}
    first = measured_choice(tmp_path, "training B32 T128 F64 U256-256", candidates)
    assert calls == {"keras": 4, "native": 4}  # one warm-up and three timed calls each
    kept = json.loads((tmp_path / CHOICES).read_text())["training B32 T128 F64 U256-256"]
    assert kept["engine"] == first.engine and set(kept["median_ms"]) == {"keras", "native"}
    again = measured_choice(tmp_path, "training B32 T128 F64 U256-256", candidates)
    assert again.engine == first.engine and again.why.startswith("kept choice")
    assert calls == {"keras": 4, "native": 4}  # nothing timed again
    measured_choice(tmp_path, "forward B32 T128 F64 U256-256", candidates)  # another class: measured
    assert calls == {"keras": 8, "native": 8}
    assert set(read_choices(tmp_path / CHOICES)) == {"training B32 T128 F64 U256-256",
                                                    "forward B32 T128 F64 U256-256"}
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@given(st.one_of(st.binary(max_size=64).map(lambda b: b.decode("latin-1"))
                 .filter(lambda t: t.strip() != "{}"),
                 st.sampled_from(['{"training B1": {"engine": 3}}', "[1, 2]", '{"a": []}', "{", ""])))
@budget(30)
def test_a_corrupt_choices_file_is_ignored_with_a_line_and_measured_again(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("choices")
    (folder / CHOICES).write_text(text, encoding="latin-1")
    calls = {}
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("lstm_exp.compute.engine_choice")
    logger.addHandler(handler)
    try:
        choice = measured_choice(folder, "training B1 T1 F1 U1",
                                 {"keras": _counting(calls, "keras"), "native": _counting(calls, "native")})
    finally:
        logger.removeHandler(handler)
    assert choice.engine in ("keras", "native") and calls == {"keras": 4, "native": 4}
    assert sum("ignoring the engine choices" in r.getMessage() for r in records) >= 1
    assert read_choices(folder / CHOICES)["training B1 T1 F1 U1"]["engine"] == choice.engine


def test_a_choice_kept_by_another_process_while_measuring_is_adopted(tmp_path):
    """Two first jobs of a parallel sweep measure at once: both run what the first one kept."""
    key = "forward B4 T8 F8 U4-8"

    def another_process_keeps_native_meanwhile(candidates):
        measured_choice(tmp_path, key, candidates, timing=lambda c: {"keras": 2.0, "native": 1.0})
        return {"keras": 1.0, "native": 2.0}  # this process alone would keep stock Keras

    calls = {}
    candidates = {"keras": _counting(calls, "keras"), "native": _counting(calls, "native")}
    choice = measured_choice(tmp_path, key, candidates, timing=another_process_keeps_native_meanwhile)
    assert choice == Choice("native", "kept choice (measured 1.0 ms vs keras 2.0 ms)")
    assert read_choices(tmp_path / CHOICES)[key]["median_ms"] == {"keras": 2.0, "native": 1.0}
