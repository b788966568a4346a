"""Every CSV the kit writes keeps a spreadsheet from running a cell as a formula (issue 31): a
class or file name that starts with = + - @ (or a tab or CR) is written with a leading single
quote, numbers stay numbers, and the kit's own readers get the original text back."""

import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from data_setup import files
from data_setup.loading import Dataset
from data_setup.splitting import read_split_file
from s3f_kit.reports import claims as s3f_claims
from s3f_kit.reports import records as s3f_records

REPO = Path(__file__).resolve().parents[1]
HOSTILE = ["=cmd|' /C calc'!A0", '+HYPERLINK("http://x","y")', "-2+3", "@SUM(A1)", "\tx",
           "\r=x", "'=quoted already", "''-twice", "-"]  # fmt: skip
HARMLESS = ["benign", "'quoted", "", "a=b", "-9.72", "+5", "1e-3", "-.5"]


def _is_formula(cell: str) -> bool:
    """What a spreadsheet runs as a formula: a cell starting with = + - @, a tab or a CR that
    is not a plain number (this test's own rule, independent of the kit's)."""
    if cell[:1] not in ("=", "+", "-", "@", "\t", "\r"):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def _live_formulas(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row if _is_formula(cell)]


def test_a_formula_like_cell_is_quoted_a_number_stays_and_every_text_round_trips():
    for text in HOSTILE:
        written = files.csv_cell(text)
        assert written == "'" + text and not _is_formula(written)
        assert files.csv_text(written) == text
    for text in HARMLESS:
        assert files.csv_cell(text) == text and files.csv_text(text) == text
    for value in (-9.72, -3, None, np.nan):
        assert files.csv_cell(value) is value


def test_a_frame_is_written_without_live_formulas_and_read_back_as_it_was(tmp_path):
    names = [name for name in HOSTILE + HARMLESS if "\r" not in name]  # CR: the next test
    frame = pd.DataFrame(
        {
            "file": [f"{name}.png" if name else "x.png" for name in names],
            "predicted_label": names,
            "delta": -np.linspace(1, 9.72, len(names)),  # a claim's −9.72 stays a number
            "kind": pd.Categorical((["=near", "exact"] * len(names))[: len(names)]),
        }
    )
    frame["prob_=a"] = np.linspace(0, 1, len(names))
    path = tmp_path / "predictions.csv"
    files.write_csv_atomic(path, frame, index=False, float_format="%.6g")
    assert _live_formulas(path) == []
    with open(path, newline="", encoding="utf-8") as handle:
        deltas = [row[2] for row in csv.reader(handle)][1:]
    assert deltas[-1] == "-9.72" and all(float(cell) < 0 for cell in deltas)  # numbers stay
    back = files.restore_csv_frame(pd.read_csv(path, keep_default_na=False))
    assert list(back.columns) == list(frame.columns)
    assert back["file"].tolist() == frame["file"].tolist()
    assert back["predicted_label"].tolist() == names
    assert back["kind"].tolist() == frame["kind"].tolist()
    assert np.allclose(back["delta"], frame["delta"]) and back["delta"].dtype.kind == "f"


def test_a_cr_inside_a_cell_starts_no_row_with_a_live_formula(tmp_path):
    """Python's csv writer leaves a CR unquoted under LF line ends: `a\r=cmd` would start a
    row with `=cmd`. Frames and rows alike come back as one cell each."""
    names = ["a\r=cmd|' /C calc'!A0", "\r+1+1", "plain"]
    frame_csv, rows_csv = tmp_path / "frame.csv", tmp_path / "rows.csv"
    files.write_csv_atomic(
        frame_csv, pd.DataFrame({"label": names, "x": [-1.5, 0, 2]}), index=False
    )
    files.write_csv_atomic(rows_csv, [("label", "x"), *((name, "-1.5") for name in names)])
    for path in (frame_csv, rows_csv):
        assert _live_formulas(path) == []
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert [files.csv_text(row[0]) for row in rows[1:]] == names and len(rows) == 4
    back = files.restore_csv_frame(pd.read_csv(frame_csv))
    assert back["label"].tolist() == names and back["x"].tolist() == [-1.5, 0, 2]


def test_split_csv_written_by_the_kit_is_read_back_with_its_names(tmp_path):
    """Rows written by the csv module (split.csv, the audit's pairs, the synthetic labels):
    the file names come back exactly from read_split_file (load_dataset(split_file=…))."""
    table = [(f"{name}/{name}.png", ("train", "test")[i % 2]) for i, name in enumerate(HOSTILE)]
    data = SimpleNamespace(split_table=lambda: table, groups={table[0][0]: "+lesion-1"})
    path = tmp_path / "split.csv"
    Dataset.write_split_csv(data, path)
    assert _live_formulas(path) == []
    assert read_split_file(path) == dict(table)


def _write_run(root, experiment, seed, names, correct, writer):
    """A finished run's predictions.csv and metrics.json, with class and file names from a
    hostile labels CSV; `writer` is the kit's (write_csv_atomic) or an older kit's (to_csv)."""
    folder = root / experiment / f"seed{seed}"
    folder.mkdir(parents=True)
    n = 60
    true = np.array(names, dtype=object)[np.arange(n) % len(names)]
    right = np.random.default_rng(seed).random(n) < correct
    wrong = np.array(names, dtype=object)[(np.arange(n) + 1) % len(names)]
    frame = pd.DataFrame({"file": [f"-{i}+scan.png" for i in range(n)], "true_label": true,
                          "predicted_label": np.where(right, true, wrong)})  # fmt: skip
    writer(frame, folder / "predictions.csv")
    metrics = {"experiment": experiment, "variant": "", "seed": seed, "protocol": "paper",
               "dataset": "BUSI", "accuracy": float(np.mean(right)), "demo_data": True,
               "run_dir": str(folder)}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def test_claims_pair_runs_by_the_original_names_whichever_kit_wrote_them(tmp_path):
    names = ["=benign", "+malignant", "@normal"]
    kit = lambda frame, path: files.write_csv_atomic(path, frame, index=False)  # noqa: E731
    older = lambda frame, path: frame.to_csv(path, index=False)  # noqa: E731
    runs = []
    for seed in (42, 43, 44):
        runs.append(_write_run(tmp_path, "S3F_Concat_BUSI", seed, names, 0.9, kit))
        runs.append(_write_run(tmp_path, "Spatial_BUSI", seed, names, 0.6, older))
    back, why = s3f_records.read_predictions({**runs[0], "class_names": names})
    assert why is None and back.files[1] == "-1+scan.png"
    assert sorted(set(back.labels)) == [0, 1, 2]  # every name known: none kept its quote
    table = s3f_claims.claims_table(runs)  # pairs each seed's two runs image by image
    row = table[(table["dataset"] == "BUSI") & table["claim"].str.contains("spatial")].iloc[0]
    assert row["n_pairs"] == 3 and row["mean_delta"] > 0


CSV_WRITER = re.compile(r"\.to_csv\(|csv\.(?:writer|DictWriter)\(|write_atomic\([^\n]*\.csv")


def test_no_csv_writer_of_the_kit_bypasses_write_csv_atomic():
    sources = [*REPO.glob("s3f_*.py"), *(REPO / "s3f_kit").rglob("*.py")]
    sources += [*(REPO / "data_setup").glob("*.py"), *(REPO / "notebooks").glob("*.ipynb")]
    found = {p.relative_to(REPO).as_posix(): CSV_WRITER.findall(p.read_text()) for p in sources}
    helper = found.pop("data_setup/files.py")
    assert set(helper) == {".to_csv(", "csv.writer("}  # the scan sees the writers it checks
    assert {path: calls for path, calls in found.items() if calls} == {}
