"""Model cards and reproduction reports (issue 34, items 3 and 4): what they say, that a
hostile value from a user's data cannot bring a script into the HTML, and that a finished tiny
run carries both."""

import json
import re
import warnings

import pytest

from data_setup.datasets import CUSTOM, DATASETS
from s3f_kit.reports import model_card as s3f_model_card
from s3f_kit.reports import reproduction as s3f_reproduction
from s3f_kit.reports import results as s3f_results
from tests.test_sweep import _fake_run

SHA = "ab12" * 16
HOSTILE = (
    "<script>alert(1)</script>",
    "[x](javascript:alert(2))",
    '<img src=x onerror="alert(3)">',
)


def _ham_record(**fields) -> dict:
    return {
        "experiment": "S3F_Bilinear_HAM10000",
        "dataset": "HAM10000",
        "class_names": list(DATASETS["HAM10000"].class_names),
        "protocol": "holdout",
        "params": 1234,
        "data_manifest": {"sha256": SHA, "counts": {"test": {"MEL": 3, "NV": 9}}},
        "test_images": 12,
        "intervals": {
            "accuracy": {"value": 0.75, "ci_low": 0.5, "ci_high": 0.9, "method": "Wilson score"},
            "bootstrap": {"resamples": 2000, "method": "a note, not a metric"},
        },
        **fields,
    }


def _build(runs, results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return s3f_results.build_results(runs, results)


def test_every_dataset_states_its_licence_and_ham10000s_is_non_commercial():
    assert DATASETS["HAM10000"].licence == "CC BY-NC 4.0"
    assert DATASETS["BRISC2025"].licence == "CC BY 4.0"
    assert all(info.licence for info in DATASETS.values())
    assert s3f_model_card.non_commercial(DATASETS["HAM10000"].licence)
    assert not any(s3f_model_card.non_commercial(DATASETS[d].licence) for d in ("BRISC2025",))
    assert s3f_model_card.licence_of(CUSTOM) == "the user's own: state it"


def test_a_ham10000_card_carries_the_non_commercial_terms_digest_and_intervals(tmp_path):
    path = s3f_model_card.write_model_card(tmp_path, _ham_record())
    card = path.read_text(encoding="utf-8")
    assert path.name == "MODEL_CARD.md"
    assert "Not a medical device" in card and "Research only" in card
    assert "CC BY-NC 4.0" in card and "non-commercial purposes only" in card
    assert SHA in card
    assert "| accuracy | 0.7500 | [0.5000, 0.9000] | Wilson score |" in card
    assert "a note, not a metric" not in card  # the intervals' method note is no metric row
    brisc = s3f_model_card.model_card(_ham_record(dataset="BRISC2025"))
    assert "CC BY 4.0" in brisc and "non-commercial" not in brisc.lower()


def test_missing_analyses_are_a_sentence_and_present_ones_are_summarised():
    card = s3f_model_card.model_card(_ham_record())
    assert "Shortcuts: not computed for this run." in card
    assert "Ablation: not computed for this run." in card
    found = s3f_model_card.model_card(
        _ham_record(
            shortcuts={"kappa": 0.31, "kappa_ci": [0.2, 0.4], "flagged": True, "rule": "κ ≥ 0.2"},
            ablation={"spectral": {"drop": 0.12, "probe_accuracy": 0.8}, "extra": [1, 2, 3]},
        )
    )
    assert "kappa: 0.31" in found and "kappa\\_ci: [0.2, 0.4]" in found
    assert "flagged: True" in found
    assert "spectral: drop 0.12, probe\\_accuracy 0.8" in found
    assert "not computed" not in found
    many = s3f_model_card.analysis_lines({"ablation": {f"k{i}": i for i in range(100)}}, "ablation")
    assert len(many) <= s3f_model_card.SUMMARY_ITEMS + 2  # bounded, with a "… more" line


def test_a_hostile_value_is_inert_markdown():
    for value in HOSTILE:
        escaped = s3f_model_card.text(value)
        assert not re.search(r"(?<!\\)[<\[\]()]", escaped), escaped
    assert s3f_model_card.text("a|b\nc") == "a\\|b c"  # no new table cell, no new line
    assert len(s3f_model_card.text("x" * 10_000)) == s3f_model_card.TEXT_LIMIT


def _runs(tmp_path, class_names=None):
    runs = tmp_path / "runs"
    extra = {"class_names": list(class_names)} if class_names else {}
    folders = [
        _fake_run(
            runs,
            "S3F_Concat_BUSI",
            seed,
            0.8,
            data_manifest={"sha256": SHA, "counts": {}},
            **extra,
        )  # fmt: skip
        for seed in (42, 43)
    ]
    return runs, folders


def test_the_sweep_report_links_each_runs_report_and_the_readme_links_it(tmp_path):
    runs, folders = _runs(tmp_path)
    (folders[0] / "S3F_Concat_BUSI.ipynb").write_text("{}")
    (folders[0] / "S3F_Concat_BUSI.html").write_text("<html>the executed notebook</html>")
    _build(runs, tmp_path / "results")
    reports = tmp_path / "results" / "reports"
    index_md = (reports / "index.md").read_text(encoding="utf-8")
    index_html = (reports / "index.html").read_text(encoding="utf-8")
    for folder in folders:
        subdir = folder.relative_to(runs).as_posix()
        assert f"({subdir}/report.md)" in index_md
        assert f'href="{subdir}/report.html"' in index_html
        page = (reports / subdir / "report.md").read_text(encoding="utf-8")
        assert "see https" in page and SHA in page  # BUSI's licence: see its source
        assert "| accuracy % | 80.00 |" in page and "| 87.82 |" in page  # beside the paper's
        assert "Ablation: not computed" in page and "Shortcuts: not computed" in page
        assert (reports / subdir / "MODEL_CARD.md").is_file()
        assert 'href="MODEL_CARD.html"' in (reports / subdir / "report.html").read_text()
    (folders[1] / "S3F_Concat_BUSI.ipynb").write_text("{}")
    (tmp_path / "private.txt").write_text("not for sharing")
    (folders[1] / "S3F_Concat_BUSI.html").symlink_to(tmp_path / "private.txt")
    _build(runs, tmp_path / "results")  # again: a link planted as the notebook's HTML
    second = reports / folders[1].relative_to(runs).as_posix()
    assert not (second / "notebook.html").exists()
    first = reports / folders[0].relative_to(runs).as_posix()
    assert (first / "notebook.html").read_text() == "<html>the executed notebook</html>"
    assert "[Executed notebook](notebook.html)" in (first / "report.md").read_text()
    readme = (tmp_path / "results" / "README.md").read_text(encoding="utf-8")
    assert "## Reproduction reports" in readme and "(reports/index.md)" in readme


def test_no_script_reaches_the_html_from_a_hostile_class_name(tmp_path):
    runs, _ = _runs(tmp_path, class_names=HOSTILE)
    _build(runs, tmp_path / "results")
    pages = sorted((tmp_path / "results" / "reports").rglob("*.html"))
    assert len(pages) == 1 + 2 * 2  # the sweep's, and each run's report and card
    shown = 0
    for page in pages:
        body = page.read_text(encoding="utf-8").lower()
        assert (
            "<script" not in body
            and "<img" not in body
            and "javascript:" not in body.split("</title>")[0]
        )
        assert not re.search(r'href="javascript:', body) and "onerror=" not in body.replace(
            "onerror=&quot;", ""
        )
        shown += "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # shown as text
    assert shown == 2 * 2  # in each run's report and card


def test_the_html_renderer_shows_raw_html_as_text_and_drops_harmful_links():
    # the second guard: Markdown that reached the page unescaped still runs nothing
    page = s3f_reproduction.to_html(" ".join(HOSTILE) + " [y](vbscript:z)", "<b>t</b>")
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert "javascript:" not in page.split("&lt;")[0] and 'href="vbscript' not in page
    assert 'href="javascript' not in page and "&lt;script&gt;" in page


def test_local_paths_stay_off_a_shared_page():
    record = _ham_record(run_settings={"data_dir": "/home/me/secret", "epochs": 3})
    record.update(run_subdir="S3F_Bilinear_HAM10000/seed42", variant="")
    page = s3f_reproduction.run_report(record, "No executed notebook.")
    assert "/home/me/secret" not in page and "epochs=3" in page


@pytest.fixture(scope="module")
def ham_run(keras, kernel_env, tmp_path_factory):
    """A finished tiny HAM10000-like run (synthetic demo data), trained once."""
    from s3f_kit.run import training as s3f_training

    output = tmp_path_factory.mktemp("runs")
    run = s3f_training.Run(
        "S3F_Bilinear_HAM10000", epochs=1, img_size=[16, 16], demo_count=4, batch_size=8,
        verbose=0, output_dir=str(output),
    )  # fmt: skip
    data = run.load_data()
    run.train(run.build_model(data), data)
    run.evaluate(data)
    return output, run.run_dir


def test_a_finished_tiny_run_has_a_model_card_and_a_report(ham_run, tmp_path):
    output, run_dir = ham_run
    assert (run_dir / "model.keras").is_file()
    card = (run_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    record = json.loads((run_dir / "metrics.json").read_text())
    sha = record["data_manifest"]["sha256"]
    assert "CC BY-NC 4.0" in card and "non-commercial purposes only" in card
    assert sha in card and "| accuracy |" in card and "Wilson" in card
    _build(output, tmp_path / "results")
    subdir = run_dir.relative_to(output).as_posix()
    page = (tmp_path / "results" / "reports" / subdir / "report.md").read_text(encoding="utf-8")
    assert "CC BY-NC 4.0" in page and sha in page
    assert re.search(r"\| balanced_accuracy \| [\d.]+ \[[\d.]+, [\d.]+\] \| – \|", page)
    assert "tensorflow: " in page and "Determinism:" in page
