"""The typed run record behind metrics.json: declared keys and kinds, enforced when a run writes
its record and when the tables read one (no TensorFlow needed)."""

import json

import pytest

from s3f_kit.reports import results_tables as s3f_results_tables
from s3f_kit.run_record import RunRecord
from tests.test_sweep import _fake_run


def test_a_writer_cannot_add_an_undeclared_key_or_a_wrong_kind():
    with pytest.raises(ValueError, match=r"in RunRecord \(s3f_kit/run_record.py\): acuracy"):
        RunRecord.build({"experiment": "Spatial_BUSI", "acuracy": 0.9})
    with pytest.raises(ValueError, match=r"params is 1\.5 \(float\), expected a whole number"):
        RunRecord.build({"experiment": "Spatial_BUSI", "params": 1.5})
    with pytest.raises(ValueError, match="collapsed is 'no'"):
        RunRecord.build({"collapsed": "no"})
    with pytest.raises(ValueError, match="accuracy is True"):
        RunRecord.build({"accuracy": True})  # JSON true is not a number


def test_a_record_reads_back_with_every_declared_key_and_keeps_unknown_ones():
    import numpy as np

    record = RunRecord.build({"experiment": "Spatial_BUSI", "params": np.int64(7),
                              "accuracy": np.float32(0.5), "class_names": ["a", "b"]})  # fmt: skip
    stored = json.loads(json.dumps(record.as_json()))  # NumPy scalars stored as plain numbers
    assert set(stored) == set(RunRecord.keys())
    assert stored["params"] == 7 and isinstance(stored["params"], int)
    assert stored["skipped_files"] == 0 and stored["skipped"] == [] and stored["seed"] is None
    assert stored["intervals"] is None  # an optional object: absent, not empty
    newer = {**stored, "from_a_newer_kit": [1, 2]}
    again = RunRecord.from_json(newer)
    assert again.extra == {"from_a_newer_kit": [1, 2]} and again.as_json() == newer
    older = RunRecord.from_json({"experiment": "Spatial_BUSI", "skipped": None})
    assert older.skipped == [] and older.variant is None  # null or missing: the default
    with pytest.raises(ValueError, match="not an object"):
        RunRecord.from_json([1, 2])


def test_every_declared_key_has_a_doc():
    import dataclasses

    for f in dataclasses.fields(RunRecord):
        assert f.metadata["doc"].strip(), f.name


def test_tables_leave_out_a_record_of_the_wrong_kind_and_fill_older_ones(tmp_path):
    good = _fake_run(tmp_path, "Spatial_BUSI", 42, 0.8)
    bad = _fake_run(tmp_path, "Spatial_BUSI", 43, 0.7)
    record = json.loads((bad / "metrics.json").read_text())
    record["epochs_run"] = "three"
    (bad / "metrics.json").write_text(json.dumps(record))
    runs, unusable, _ = s3f_results_tables.collect(tmp_path)
    assert [r["run_dir"] for r in runs] == [str(good)]
    assert len(unusable) == 1 and "epochs_run is 'three'" in unusable[0].reason
    assert set(RunRecord.keys()) <= set(runs[0])  # an older record: every key, defaults filled
    assert runs[0]["variant"] == ""  # derived from its settings where it recorded none


def test_a_record_with_only_the_required_keys_builds_every_table(tmp_path):
    """An older (or hand-made) record: every declared key it lacks comes back None, and no
    table, claim or figure may trip over one (bench_scale writes such records)."""
    from s3f_kit.reports import results as s3f_results
    from s3f_kit.reports.records import REQUIRED_KEYS

    folder = tmp_path / "runs" / "Spatial_BUSI" / "seed42"
    folder.mkdir(parents=True)
    record = {"experiment": "Spatial_BUSI", "accuracy": 0.5, "weighted_f1": 0.5,
              "macro_f1": 0.5, "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
              "class_names": ["benign", "malignant", "normal"], "protocol": "paper",
              "params": 10}  # fmt: skip
    assert set(record) == REQUIRED_KEYS
    (folder / "metrics.json").write_text(json.dumps(record))
    s3f_results.build_results(tmp_path / "runs", tmp_path / "results")
    summary = (tmp_path / "results" / "README.md").read_text()
    assert "Spatial baseline" in summary and "left out" not in summary.lower()
