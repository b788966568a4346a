"""Reviewer numbers in results/: intervals in the tables, the calibration section, and claims
decided by the most trusted protocol (no TensorFlow needed)."""

import dataclasses
import itertools
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from s3f_kit.reports import claims as s3f_claims
from s3f_kit.reports import plots as s3f_plots
from s3f_kit.reports import records as s3f_records
from s3f_kit.reports import results as s3f_results
from s3f_kit.reports import results_calibration as s3f_results_calibration
from s3f_kit.reports import results_tables as s3f_results_tables
from s3f_kit.reports import stats as s3f_stats
from s3f_kit.run import calibration as s3f_calibration
from s3f_kit.run import intervals as s3f_intervals
from tests.test_claims import _runs, _write_run
from tests.test_sweep import _fake_run

BUSI = ["benign", "malignant", "normal"]


def _build(runs, results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return s3f_results.build_results(runs, results)


def _predictions(seed, n=90, sharpness=3.0):
    """Planted labels and over-confident softmax probabilities of a 3-class model."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(sharpness * logits)
    return labels, probs / probs.sum(axis=1, keepdims=True)


def _reviewer_fields(seed, protocol="paper"):
    """accuracy, intervals and calibration of one run, made by the kit's own functions."""
    labels, probs = _predictions(seed)
    predicted = probs.argmax(axis=1)
    val = _predictions(seed + 100) if protocol == "holdout" else (None, None)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "intervals": s3f_intervals.bootstrap_intervals(labels, predicted, probs),
        "calibration": s3f_calibration.calibration_report(protocol, labels, probs, *val),
    }


def _run_with_predictions(root, seed, settings, skill=1.5):
    """A finished BUSI run whose predictions.csv and metrics.json agree (the kit's own
    intervals), and its predictions as the statistics read them."""
    labels, probs = _predictions(seed)
    if skill is None:  # every image right
        probs = np.eye(3)[labels] * 0.9 + 0.1 / 3
    predicted = probs.argmax(axis=1)
    fields = _reviewer_fields(seed)
    fields["intervals"] = s3f_intervals.bootstrap_intervals(labels, predicted, probs)
    matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1, 2]).tolist()
    accuracy = float(np.mean(predicted == labels))
    folder = _fake_run(root, "S3F_Concat_BUSI", seed, accuracy, settings,
                       intervals=fields["intervals"], confusion_matrix=matrix)  # fmt: skip
    files = np.array([f"img{i}.png" for i in range(len(labels))])
    frame = pd.DataFrame({"file": files, "true_label": np.array(BUSI)[labels],
                          "predicted_label": np.array(BUSI)[predicted]})  # fmt: skip
    for k, name in enumerate(BUSI):
        frame[f"prob_{name}"] = probs[:, k]
    frame.to_csv(folder / "predictions.csv", index=False)
    return s3f_stats.Predictions(files, labels, predicted, probs)


def test_a_run_shows_its_interval_few_seeds_their_range_and_five_seeds_a_bootstrap_interval(
    tmp_path,
):
    runs = tmp_path / "runs"
    single = _reviewer_fields(7)
    _fake_run(runs / "hand", "S3F_Concat_BUSI", 42, single["accuracy"], {"epochs": 50},
              intervals=single["intervals"])  # fmt: skip
    for seed, accuracy in ((42, 0.80), (43, 0.90), (44, 0.85)):
        fields = _reviewer_fields(seed)
        _fake_run(runs / "demo", "S3F_Concat_BUSI", seed, accuracy, {"epochs": 15},
                  intervals=fields["intervals"])  # fmt: skip
    five = [[_run_with_predictions(runs / "five", seed, {"epochs": 25})] for seed in range(42, 47)]
    _fake_run(runs, "Spatial_BUSI", 42, 0.75)  # an older record: no intervals
    frame = _build(runs, tmp_path / "results").set_index(["experiment", "settings"])

    one = frame.loc[("S3F_Concat_BUSI", "epochs=50")]
    wilson = single["intervals"]["accuracy"]
    assert (one["accuracy_%_ci_low"], one["accuracy_%_ci_high"]) == pytest.approx(
        (100 * wilson["ci_low"], 100 * wilson["ci_high"]), abs=1e-4
    )
    assert one["accuracy_%_ci_low"] < one["accuracy_%"] < one["accuracy_%_ci_high"]
    assert one["mcc_ci_low"] == pytest.approx(single["intervals"]["mcc"]["ci_low"], abs=1e-4)
    assert "one run" in one["interval"] and "Wilson" in one["interval"]

    few = frame.loc[("S3F_Concat_BUSI", "epochs=15")]  # three seeds: no interval of the mean
    assert pd.isna(few["accuracy_%_ci_low"]) and pd.isna(few["cohen_kappa_ci_low"])
    assert (few["accuracy_%_min"], few["accuracy_%_max"]) == (80.0, 90.0)
    assert "fewer than 5 seeds" in few["interval"]

    enough = frame.loc[("S3F_Concat_BUSI", "epochs=25")]
    expected = s3f_stats.across_runs(five)
    for key, column in (("accuracy", "accuracy_%"), ("cohen_kappa", "cohen_kappa")):
        scale = 100 if key == "accuracy" else 1
        assert (enough[f"{column}_ci_low"], enough[f"{column}_ci_high"]) == pytest.approx(
            (scale * expected[key]["ci_low"], scale * expected[key]["ci_high"]), abs=1e-3
        )
    assert enough["accuracy_%_ci_low"] < enough["accuracy_%"] < enough["accuracy_%_ci_high"]
    assert "two-level bootstrap" in enough["interval"] and pd.isna(enough["loss_ci_low"])

    old = frame.loc[("Spatial_BUSI", "")]
    assert pd.isna(old["accuracy_%_ci_low"]) and old["accuracy_%"] == pytest.approx(75.0)

    readme = (tmp_path / "results" / "README.md").read_text()
    single_cell = (
        f"| {100 * wilson['value']:.2f} [{100 * wilson['ci_low']:.2f}, "
        f"{100 * wilson['ci_high']:.2f}] |"
    )
    assert single_cell in readme
    assert "| 85.00 ± 5.00 (80.00–90.00) |" in readme  # mean ± sd (min–max), no interval
    low, high = enough["accuracy_%_ci_low"], enough["accuracy_%_ci_high"]
    least, most = enough["accuracy_%_min"], enough["accuracy_%_max"]
    assert f"({least:.2f}–{most:.2f}) [{low:.2f}, {high:.2f}] |" in readme
    spatial = next(line for line in readme.splitlines() if line.startswith("| Spatial"))
    assert "| 75.00 |" in spatial and "[" not in spatial  # the bare number, no interval
    per_run = pd.read_csv(tmp_path / "results" / "runs.csv")
    assert {"accuracy_%_ci_low", "accuracy_%_ci_high", "roc_auc_ci_high"} <= set(per_run)
    assert per_run["accuracy_%_ci_low"].notna().sum() == 9


def _bounds_outside(table: pd.DataFrame) -> list[str]:
    """Every interval bound of a results table outside its metric's range (table units)."""
    outside = []
    for key, (least, most) in s3f_stats.METRIC_RANGES.items():
        column = s3f_results_tables.METRICS[key]
        scale = s3f_stats.display_scale(key)
        for side in ("ci_low", "ci_high"):
            values = table[f"{column}_{side}"].dropna()
            outside += [f"{column}_{side} {v}" for v in values
                        if not least * scale <= v <= most * scale]  # fmt: skip
    return outside


def test_no_interval_in_the_results_tables_leaves_its_metrics_range(tmp_path):
    """The issue's count (75 of 950 bounds outside the range) is 0: runs of every skill, all
    right, and groups of 1, 3 and 5 seeds, with the tables written as the README reads them."""
    runs = tmp_path / "runs"
    for seed in range(42, 47):
        _run_with_predictions(runs / "perfect", seed, {"epochs": 5}, skill=None)  # all right
        _run_with_predictions(runs / "mixed", seed, {"epochs": 6})
    for seed in (42, 43, 44):  # three seeds far apart: the old t-interval left [0, 100]
        _run_with_predictions(runs / "spread", seed, {"epochs": 7}, skill=None if seed == 42 else 1)
    frame = _build(runs, tmp_path / "results")
    assert len(frame) == 3
    assert _bounds_outside(frame) == []
    assert _bounds_outside(pd.read_csv(tmp_path / "results" / "runs.csv")) == []
    assert frame["accuracy_%_ci_low"].notna().sum() == 2  # the five-seed groups


def test_the_calibration_table_holds_the_records_means_and_a_reliability_grid(tmp_path):
    runs = tmp_path / "runs"
    holdout = {seed: _reviewer_fields(seed, "holdout") for seed in (42, 43, 44)}
    for seed, fields in holdout.items():
        _fake_run(runs, "S3F_Concat_BUSI", seed, fields["accuracy"], {"protocol": "holdout"},
                  protocol="holdout", calibration=fields["calibration"])  # fmt: skip
    paper = _reviewer_fields(50)
    _fake_run(runs, "Spatial_BUSI", 42, paper["accuracy"], calibration=paper["calibration"])
    _fake_run(runs, "SpectraNet_BUSI", 42, 0.6)  # an older record: no calibration
    _build(runs, tmp_path / "results")

    table = pd.read_csv(tmp_path / "results" / "calibration.csv").set_index("experiment")
    assert len(table) == 2  # the run without calibration is not a row
    row = table.loc["S3F_Concat_BUSI"]
    records = [f["calibration"] for f in holdout.values()]
    for score in ("nll", "brier", "ece"):
        values = [r[score] for r in records]
        assert row[score] == pytest.approx(np.mean(values), rel=1e-5)
        assert row[f"{score}_sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-5)
        after = [r["temperature_scaling"]["after"][score] for r in records]
        assert row[f"{score}_after"] == pytest.approx(np.mean(after), rel=1e-5)
    temperatures = [r["temperature_scaling"]["temperature"] for r in records]
    assert row["temperature"] == pytest.approx(np.mean(temperatures), rel=1e-5)
    assert row["n_scaled"] == 3 and row["nll_after"] < row["nll"]  # over-confident: T helps
    spatial = table.loc["Spatial_BUSI"]
    assert spatial["nll"] == pytest.approx(paper["calibration"]["nll"], rel=1e-5)
    assert spatial["n_scaled"] == 0 and "paper protocol" in spatial["scaling"]

    readme = (tmp_path / "results" / "README.md").read_text()
    assert "## Calibration (test split)" in readme
    assert "1 run(s) recorded no calibration" in readme
    line = next(x for x in readme.splitlines() if x.startswith("| BUSI | S³F-Net"))
    nll = [r["nll"] for r in records]
    assert f"| {np.mean(nll):.3f} ± {np.std(nll, ddof=1):.3f} |" in line
    assert "![reliability diagrams, BUSI](reliability_BUSI.png)" in readme
    assert (tmp_path / "results" / "reliability_BUSI.png").stat().st_size > 10_000


def test_pooled_reliability_bins_are_the_bins_of_all_predictions_together():
    parts = [_predictions(seed) for seed in (1, 2)]
    labels = np.concatenate([p[0] for p in parts])
    probs = np.concatenate([p[1] for p in parts])
    separate = [s3f_calibration.reliability(*p) for p in parts]
    pooled = s3f_results_calibration.pooled_bins(separate)
    together = s3f_calibration.reliability(labels, probs)["bins"]
    assert [b["count"] for b in pooled] == [b["count"] for b in together]
    for mine, theirs in zip(pooled, together, strict=True):
        if theirs["count"]:
            assert mine["accuracy"] == pytest.approx(theirs["accuracy"])
            assert mine["confidence"] == pytest.approx(theirs["confidence"])
    other = s3f_calibration.reliability(*parts[0], bins=10)
    assert s3f_results_calibration.pooled_bins([separate[0], other]) is None  # other binning


def test_reliability_grid_draws_one_panel_per_model_with_after_scaling(tmp_path):
    entries = [
        ("BUSI: holdout", _reviewer_fields(1, "holdout")["calibration"], ", mean of 3 seeds"),
        ("BUSI: paper", _reviewer_fields(2)["calibration"], ""),
    ]
    figure = s3f_plots.reliability_grid(entries, tmp_path / "grid.png", banner="DEMO")
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["BUSI: holdout", "BUSI: paper"]
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in panels]
    assert any(text.startswith("after temperature") for text in legends[0])
    assert not any(text.startswith("after temperature") for text in legends[1])
    assert any("mean of 3 seeds" in text for text in legends[0])
    assert (tmp_path / "grid.png").stat().st_size > 10_000
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically: no temp file left


def _holdout(runs):
    for m in runs:
        m["protocol"] = "holdout"
    return runs


def _busi_spatial_rows(frame):
    return frame[(frame["dataset"] == "BUSI") & frame["claim"].str.contains("its spatial baseline")]


def test_holdout_runs_decide_a_claim_and_the_paper_protocol_stands_as_published(tmp_path):
    paper = _runs(tmp_path / "paper", 0.85, 0.75, seeds=5)  # supported under the paper protocol
    holdout = _holdout(_runs(tmp_path / "holdout", 0.70, 0.82, seeds=5))  # … contradicted here
    rng = np.random.default_rng(5)  # a second claim with paper-protocol runs only
    paper += [_write_run(tmp_path / "paper", "SpectraNet_BUSI", "", seed, 0.5, rng)
              for seed in range(42, 47)]  # fmt: skip
    frame = s3f_claims.claims_table([*paper, *holdout])
    rows = _busi_spatial_rows(frame)
    assert list(rows["role"]) == ["verdict", "as published"]
    decided, published = rows.iloc[0], rows.iloc[1]
    assert (decided["protocol"], decided["verdict"]) == ("holdout", "contradicted")
    assert (published["protocol"], published["verdict"]) == ("paper", "supported")
    assert set(rows["decided_by"]) == {"holdout"}
    # Bonferroni over the verdict rows of one family only: the as-published row is its own
    # family of one, the primary row (S³F-Net vs spatial) and the exploratory one (vs
    # SpectraNet alone) are each the only tested row of their family.
    assert published["family_size"] == 1 and decided["family_size"] == 1
    assert published["p_bonferroni"] == pytest.approx(published["p"])
    alone = frame[(frame["dataset"] == "BUSI") & frame["claim"].str.contains("SpectraNet alone")]
    assert len(alone) == 1  # no holdout runs: decided by the paper protocol, nothing beside it
    assert (alone.iloc[0]["role"], alone.iloc[0]["decided_by"]) == ("verdict", "paper")
    assert alone.iloc[0]["verdict"] == "supported"

    lines = s3f_claims.write_claims([*paper, *holdout], tmp_path)
    text = "\n".join(lines)
    assert "| ↳ as published | primary | BUSI | accuracy | paper |" in text
    assert "(supported under paper) |" in text
    assert "**contradicted** |" in text and "1 by holdout, 1 by paper" in text
    written = pd.read_csv(tmp_path / "claims.csv")
    assert {"protocol", "role", "decided_by"} <= set(written) and len(written) == 26  # 17+8+1


def test_fewer_than_five_holdout_seeds_decide_inconclusive_even_beside_a_published_win(
    tmp_path,
):
    paper = _runs(tmp_path / "paper", 0.95, 0.55, seeds=5)
    holdout = _holdout(_runs(tmp_path / "holdout", 0.95, 0.55, seeds=2))
    rows = _busi_spatial_rows(s3f_claims.claims_table([*paper, *holdout]))
    assert rows.iloc[0]["protocol"] == "holdout" and rows.iloc[0]["n_seeds"] == 2
    assert rows.iloc[0]["verdict"] == "inconclusive"
    assert rows.iloc[1]["verdict"] == "supported"  # as published, not the verdict


def test_forest_plot_marks_deciding_and_as_published_results_apart(tmp_path):
    paper = _runs(tmp_path / "paper", 0.85, 0.75, seeds=5)
    holdout = _holdout(_runs(tmp_path / "holdout", 0.70, 0.82, seeds=5))
    frame = s3f_claims.claims_table([*paper, *holdout])
    figure = s3f_claims.forest_figure(frame, tmp_path / "forest.png")
    ax = figure.axes[0]
    markers = {
        (line.get_marker(), line.get_markerfacecolor() == "white")
        for line in ax.get_lines()
        if line.get_marker() not in ("None", None, "", "x")
    }
    assert markers == {("o", False), ("D", True)}  # filled verdict, hollow as published
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "decides the verdict (holdout runs)" in legend
    assert "as published (paper protocol, not the verdict)" in legend
    assert {"supported", "contradicted"} <= set(legend)
    assert any(label.get_text().endswith("(holdout)") for label in ax.get_yticklabels())


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"intervals": {"accuracy": {"value": "0.9"}}}, "intervals.accuracy is not"),
        ({"calibration": {"nll": "low", "brier": 0.1, "ece": 0.1}}, "calibration.nll is 'low'"),
        (
            {
                "calibration": {
                    "nll": 0.1,
                    "brier": 0.1,
                    "ece": 0.1,
                    "reliability": {"bins": [{"low": 0, "high": 1, "count": -1}]},
                }
            },
            "calibration.reliability.bins is not",
        ),  # fmt: skip
    ],
)
def test_malformed_intervals_or_calibration_make_a_record_unusable(change, reason):
    from tests.helpers import minimal_record

    good = minimal_record(BUSI, **_reviewer_fields(3, "holdout"))
    good["accuracy"] = 0.5
    assert s3f_records.problem(good) is None
    assert s3f_records.problem({**good, **change}).startswith(reason)


def _table_lines(readme: str, title: str) -> list[str]:
    """The Markdown table under a heading (a dataset's: its headline table)."""
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line == f"## {title}") + 2
    return list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))


def _details_lines(readme: str, dataset: str) -> list[str]:
    """A dataset's details table: every metric (the first table after its details heading)."""
    lines = readme.splitlines()
    start = lines.index(f"### {s3f_results.DETAILS_HEADING}{dataset}")
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    return list(itertools.takewhile(lambda line: line.startswith("|"), lines[first:]))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_every_table_ends_with_the_majority_class_row_of_the_runs_splits(tmp_path):
    """An imbalanced split: always predicting the training split's majority class (benign),
    scored on the test split, by scikit-learn's definitions."""
    runs = tmp_path / "runs"
    train, test = {"benign": 50, "malignant": 30, "normal": 20}, {"benign": 9, "malignant": 7,
                                                                   "normal": 4}  # fmt: skip
    for seed in (42, 43):
        _fake_run(runs, "S3F_Concat_BUSI", seed, 0.8,
                  counts={"train": train, "val": train, "test": test})  # fmt: skip
    _build(runs, tmp_path / "results")
    readme = (tmp_path / "results" / "README.md").read_text()
    title = s3f_results_tables.s3f_experiments.DATASETS["BUSI"].title
    headline = _table_lines(readme, title)
    assert _cells(headline[-1])[:3] == ["*majority class* (always benign)", "paper", "2"]
    table = _details_lines(readme, "BUSI")
    header = [cell.strip("*") for cell in _cells(table[0])]
    last = _cells(table[-1])
    assert last[:4] == ["*majority class*", "always benign", "paper", "2"]
    truth = np.repeat(BUSI, [test[name] for name in BUSI])
    always = np.full(len(truth), "benign")
    expected = {
        "acc %": f"{100 * skm.accuracy_score(truth, always):.2f}",
        "mF1": f"{skm.f1_score(truth, always, average='macro', zero_division=0):.3f}",
        "wF1": f"{skm.f1_score(truth, always, average='weighted', zero_division=0):.3f}",
        "κ": f"{skm.cohen_kappa_score(truth, always):.3f}",
        "AUC": "0.500",
    }
    for label, value in expected.items():
        assert last[header.index(label)] == value, label
    assert table[0].startswith("| model | variant | protocol | runs | **acc %** |")
    headline_header = [cell.strip("*") for cell in _cells(headline[0])]
    for label in ("acc %", "mF1"):  # BUSI's primary metrics, at a glance too
        assert _cells(headline[-1])[headline_header.index(label)] == expected[label], label


def test_the_headline_columns_come_from_the_datasets_declared_primary_metrics(
    tmp_path, monkeypatch
):
    from data_setup import datasets

    runs = tmp_path / "runs"
    _fake_run(runs, "S3F_Concat_BUSI", 42, 0.8)
    title = datasets.DATASETS["BUSI"].title

    def headers():
        """(headline table's header, details table's header)."""
        _build(runs, tmp_path / "results")
        readme = (tmp_path / "results" / "README.md").read_text()
        return _cells(_table_lines(readme, title)[0]), _cells(_details_lines(readme, "BUSI")[0])

    declared = [s3f_results.LABELS[key] for key in datasets.DATASETS["BUSI"].primary_metrics]
    headline, details = headers()
    assert headline[3::2][: len(declared)] == [f"**{label}**" for label in declared]
    assert details[4::3][: len(declared)] == [f"**{label}**" for label in declared]
    changed = dataclasses.replace(datasets.DATASETS["BUSI"],
                                  primary_metrics=("balanced_accuracy", "cohen_kappa"))  # fmt: skip
    monkeypatch.setitem(datasets.DATASETS, "BUSI", changed)
    headline, details = headers()
    assert headline[3:] == ["**bal. acc**", "paper (Δ)", "**κ**", "paper (Δ)", "flags"]
    assert details[4::3][:3] == ["**bal. acc**", "**κ**", "acc %"]
    assert "**acc %**" not in headline + details


def test_the_settings_line_names_every_value_that_differs_from_the_papers_recipe(tmp_path):
    from s3f_kit import experiments as s3f_experiments

    paper_rate = s3f_results.paper_recipe("S3F_Concat_BUSI")["learning_rate"]
    assert paper_rate == s3f_experiments.LEARNING_RATE  # derived from the recipe, not copied
    runs = tmp_path / "runs"
    _fake_run(runs, "S3F_Concat_BUSI", 42, 0.8, {"learning_rate": paper_rate})
    _build(runs, tmp_path / "same")
    same = (tmp_path / "same" / "README.md").read_text()
    line = next(line for line in same.splitlines() if line.startswith("Settings:"))
    assert "learning_rate" not in line  # the paper's value: nothing to say
    assert f"epochs=3 (paper: {s3f_experiments.RECIPES['BUSI'].epochs})" in line
    _fake_run(runs, "S3F_Concat_BUSI", 43, 0.8, {"learning_rate": 10 * paper_rate})
    _build(runs, tmp_path / "other")
    other = (tmp_path / "other" / "README.md").read_text()
    line = next(line for line in other.splitlines() if line.startswith("Settings:"))
    rates = " / ".join(sorted(json.dumps(rate) for rate in (paper_rate, 10 * paper_rate)))
    assert f"learning_rate={rates} (paper: {json.dumps(paper_rate)})" in line


def test_a_headline_table_fits_a_page_and_ends_with_the_majority_row(tmp_path):
    """Issue 36.3: the README's per-dataset tables had 32–38 columns. At a glance: model,
    protocol, runs, each primary metric with the paper's number (Δ), flags; every metric stays
    in the dataset's details table. Chest X-Ray declares three primary metrics, the most."""
    runs = tmp_path / "runs"
    counts = {"train": {"NORMAL": 30, "PNEUMONIA": 70}, "test": {"NORMAL": 8, "PNEUMONIA": 12}}
    for experiment in ("S3F_Concat_ChestXRay", "S3F_Concat_BUSI"):
        classes = s3f_results_tables.s3f_experiments.EXPERIMENTS[experiment].info.class_names
        split = {name: 10 + i for i, name in enumerate(classes)}
        split_counts = counts if "Chest" in experiment else {"train": split, "test": split}
        for seed in (42, 43):
            _fake_run(runs, experiment, seed, 0.8 + (seed - 42) / 10, counts=split_counts)
    _build(runs, tmp_path / "results")
    readme = (tmp_path / "results" / "README.md").read_text()
    for dataset in ("ChestXRay", "BUSI"):
        title = s3f_results_tables.s3f_experiments.DATASETS[dataset].title
        headline, details = _table_lines(readme, title), _details_lines(readme, dataset)
        header = _cells(headline[0])
        assert len(header) <= s3f_results.HEADLINE_MAX_COLUMNS <= 10, header
        assert len(_cells(details[0])) > s3f_results.HEADLINE_MAX_COLUMNS  # the wide one
        declared = s3f_results.primary_metrics(dataset)
        assert header[3::2][: len(declared)] == [f"**{s3f_results.LABELS[k]}**" for k in declared]
        assert len(headline) == 4  # header, rule, the model, the majority row
        assert _cells(headline[-1])[0].startswith("*majority class* (always ")
        assert all(len(_cells(line)) == len(header) for line in headline)
        model = _cells(headline[2])
        assert model[0].startswith("S³F-Net (concat, SN") and model[0].endswith(", paper's")
        assert model[2] == "2"
    row = _cells(_table_lines(readme, "BUSI breast ultrasound")[2])
    paper = s3f_results_tables.paper_numbers("S3F_Concat_BUSI")["accuracy"] * 100
    assert row[3] == "85.00 ± 7.07"  # two seeds: mean ± sd, no interval of the mean
    assert row[4] == f"{paper:.2f} ({85.0 - paper:+.2f})"


def test_one_confusion_figure_per_dataset_each_with_its_models(tmp_path):
    """Issue 36.3: one 18-panel grid of every model was legible only at full size."""
    runs = tmp_path / "runs"
    for experiment in ("S3F_Concat_BUSI", "Spatial_BUSI", "SpectraNet_BUSI",
                       "S3F_Bilinear_HAM10000"):  # fmt: skip
        _fake_run(runs, experiment, 42, 0.8)
    _build(runs, tmp_path / "results")
    results = tmp_path / "results"
    figures = sorted(p.name for p in results.glob("confusion*.png"))
    assert figures == ["confusion_BUSI.png", "confusion_HAM10000.png"]
    readme = (results / "README.md").read_text()
    for dataset in ("BUSI", "HAM10000"):
        details = readme.split(f"### {s3f_results.DETAILS_HEADING}{dataset}")[1].split("\n##")[0]
        assert f"](#{s3f_results._anchor(dataset)})" in readme  # the headline links it
        assert f"![confusion matrices, {dataset}](confusion_{dataset}.png)" in details
    figure = s3f_plots.confusion_grid(
        [("a", [[3, 1], [0, 4]], ["NORMAL", "PNEUMONIA"]), ("b", [[4, 0], [1, 3]], ["x", "y"])],
        tmp_path / "two.png", title="Chest X-Ray: confusion matrices",
    )  # fmt: skip
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["a", "b"]  # one row: no empty panels
    assert all(label.get_rotation() == 0 for label in panels[1].get_xticklabels())
