"""The vocabulary (`config/names.py`) builds DESIGN.md's names and parses back what it builds; a run's
metrics (`record/metrics.py`) reach MLflow as the rows DESIGN.md names, also after the trip to the
recorder process."""

import json
import pickle

from lstm_exp.config import names
from lstm_exp.config.specs import ModelSpec
from lstm_exp.config.validate import expected_shapes
from lstm_exp.record.metrics import RunMetrics


def test_array_names_are_designs_and_parse_back():
    assert names.array_name(0, names.SEQUENCE) == "layer_0/sequence"
    assert names.array_name(2, names.C, names.BACKWARD) == "layer_2/bw/c"
    assert names.gate_name(1, "f", names.FORWARD) == "layer_1/fw/gates/f"
    assert names.gate_name(1, "g") == "layer_1/gates/g"
    for spec in (ModelSpec("lstm", (4, 5)), ModelSpec("lstm", (3,) * 11, bidirectional=True)):
        for name in expected_shapes(spec, 2, 3, 6, one_step=False):
            parsed = names.parse_array_name(name)
            assert (parsed is None) == (name in (names.INPUT, names.OUTPUT))
            assert parsed is None or str(parsed) == name
        assert names.layer_count(expected_shapes(spec, 2, 3, 6, one_step=False)) == len(spec.units)
    assert names.parse_array_name("layer_1/bw/gates/o") == names.ArrayName(1, "gates/o", "bw")
    assert names.parse_array_name("layer_1/bw/gates/o").gate == "o"
    assert names.parse_array_name("layer_1/h").gate is None


def test_metric_names_are_designs_and_sort_by_layer():
    assert names.layer_metric(3, names.H_NORM) == "layer_3.h_norm"
    assert names.parse_layer_metric("layer_10.pca_var_1") == (10, "pca_var_1")
    assert names.parse_layer_metric("val_loss") is None
    found = ["layer_10.h_norm", "layer_2.h_norm", "layer_2.c_norm", "val_loss", "layer_0.h_norm"]
    assert names.layer_metrics(found, names.H_NORM) == ["layer_0.h_norm", "layer_2.h_norm", "layer_10.h_norm"]
    assert [names.timing_metric(n) for n in ("forward_ms", "train_s", "build_s")] == [
        "forward_ms", "train_s", "timing/build_s"]
    assert names.is_grouped_timing("timing/build_s") and not names.is_grouped_timing("forward_ms")


def test_run_metrics_rows_are_what_mlflow_receives_after_any_trip():
    metrics = RunMetrics(
        final={"reference_max_abs_err": 1e-7, "timing/build_s": 0.5, "baseline_loss": 0.17},
        final_norms={"layer_0.h_norm": 2.0, "layer_0.c_norm": 3.0},
        per_step={"layer_0.h_norm": (1.0, 1.5, 2.0)},
        per_epoch={"train_loss": (0.3, 0.2), "val_loss": (0.25, 0.15)},
    )
    assert metrics.rows() == [
        ("layer_0.h_norm", 1.0, 0), ("layer_0.h_norm", 1.5, 1), ("layer_0.h_norm", 2.0, 2),
        ("train_loss", 0.3, 0), ("train_loss", 0.2, 1), ("val_loss", 0.25, 0), ("val_loss", 0.15, 1),
        ("layer_0.c_norm", 3.0, 2),  # a final norm sits on the last time step
        ("reference_max_abs_err", 1e-7, 0), ("timing/build_s", 0.5, 0), ("baseline_loss", 0.17, 0),
    ]
    assert metrics.latest()["val_loss"] == 0.15 and metrics.latest()["layer_0.h_norm"] == 2.0
    assert RunMetrics.from_json(json.loads(json.dumps(metrics.to_json()))) == metrics
    assert pickle.loads(pickle.dumps(metrics)) == metrics

