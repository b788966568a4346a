"""A fifth dataset is one record (issue 33): registered inside the test, with no kit file edited,
it goes through synth, `s3f-data check`, the audit, a Spatial and an S³F-Net run (the notebooks'
calls) and `s3f-results`, whose tables name it. A layout kind synth cannot write is refused.

docs/extending.md ("A fifth dataset") shows the same code: change both together."""

import dataclasses

import pytest

from data_setup.datasets import DATASETS, DatasetInfo, SynthRecipe, register_dataset

# The record: every fact of the dataset in one place (data_setup.datasets.DatasetInfo).
KIDNEY = DatasetInfo(
    id="KidneyUS",
    title="Kidney ultrasound (a fifth dataset)",
    class_names=("cyst", "normal", "stone"),
    channels=1,
    image_size=(128, 128),  # the size its models train at without img_size
    layout="kidney_us/{train,test}/<class>/*.png",
    source="https://example.org/kidney-ultrasound",
    licence="CC BY 4.0",
    paper_split="the publisher's train / test folders",
    layout_kind="split_folders",  # <root>/{train,test}/<class>/*: read and synthesised alike
    paper_recipe=dict(epochs=100, f1_patience=20, lr_patience=10, fusion="concat", spectranet=1),
    demo_image_size=(16, 16),
    demo_count=8,
    synth=SynthRecipe(aspect=1.0, base="kidney_us", suffix=".png"),
)


def test_a_fifth_dataset_is_one_record_from_synth_to_results_tables(
    keras, kernel_env, tmp_path, capsys
):
    import s3f_common
    from data_setup.__main__ import main as s3f_data
    from data_setup.synth import synth_dataset
    from s3f_kit import experiments as s3f_experiments
    from s3f_kit.reports.results import main as s3f_results
    from s3f_kit.run import training as s3f_training

    with register_dataset(KIDNEY):
        root = synth_dataset("KidneyUS", tmp_path / "data", count=6, size=32, seed=0)
        assert s3f_data(["check", "KidneyUS", str(root)]) == 0
        assert s3f_data(["audit", "KidneyUS", str(root), "--out", str(tmp_path / "pairs.csv")]) == 0
        runs, results = tmp_path / "runs", tmp_path / "results"
        for name in ("Spatial_KidneyUS", "S3F_Concat_KidneyUS"):  # the notebook's cells
            run = s3f_training.Run(name, data_dir=str(root), output_dir=str(runs), epochs=1,
                                   img_size=[16, 16], batch_size=8, bn_momentum=0.9,
                                   verbose=0)  # fmt: skip
            data = run.load_data()
            model = s3f_common.build_model(**run.model_options(data))
            run.train(model, data)
            run.evaluate(data)
        assert s3f_results([str(runs), str(results)]) == 0
        readme = (results / "README.md").read_text(encoding="utf-8")
        registered = [e for e in s3f_experiments.EXPERIMENTS.values() if e.dataset == "KidneyUS"]
    out = capsys.readouterr().out
    assert f"{KIDNEY.title}: found at {root}" in out  # check read it in its layout
    assert f"## {KIDNEY.title}" in readme  # the results tables name it, with both models
    section = readme.split(f"## {KIDNEY.title}")[1].split("\n## ")[0]
    titles = {e.name: e.model_title for e in registered}
    assert set(titles) == {"Spatial_KidneyUS", "SpectraNet_KidneyUS", "S3F_Concat_KidneyUS"}
    assert f"\n| {titles['Spatial_KidneyUS']}" in section  # a row's model cell starts so
    assert f"\n| {titles['S3F_Concat_KidneyUS']}" in section
    # synth wrote ordinary class folders (its layout kind), not HAM10000's CSVs
    assert sorted(p.name for p in (root / "train").iterdir()) == list(KIDNEY.class_names)
    assert not list(root.rglob("*.csv"))
    assert "KidneyUS" not in DATASETS and "Spatial_KidneyUS" not in s3f_experiments.EXPERIMENTS


def test_synth_refuses_a_layout_kind_it_cannot_write_in_one_sentence(tmp_path):
    from data_setup.synth import synth_dataset

    odd = dataclasses.replace(KIDNEY, id="OddLayout", layout_kind="label_csv")
    with register_dataset(odd), pytest.raises(ValueError) as raised:
        synth_dataset("OddLayout", tmp_path, count=2, size=16)
    message = str(raised.value)
    assert "OddLayout" in message and "'label_csv'" in message and "split_folders" in message
    assert message.count(". ") == 0 and "\n" not in message  # one sentence
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_record_with_an_unknown_layout_kind_is_refused_in_one_sentence():
    odd = dataclasses.replace(KIDNEY, id="OddLayout", layout_kind="zip_of_dicoms")
    with pytest.raises(ValueError, match=r"unknown layout kind 'zip_of_dicoms'; expected one of"):
        with register_dataset(odd):
            pass
    assert "OddLayout" not in DATASETS


def test_every_table_that_lists_datasets_lists_a_registered_record_and_forgets_it_after(tmp_path):
    from data_setup.synth import synth_all
    from s3f_kit import experiments as s3f_experiments
    from s3f_kit.reports import claims as s3f_claims

    tables = ("RECIPES", "DEMO_COUNTS", "DEMO_IMAGE_SIZES", "DATASET_FACTS")
    with register_dataset(KIDNEY):
        for table in tables:
            assert list(getattr(s3f_experiments, table))[-1] == "KidneyUS", table
        assert s3f_experiments.RECIPES["KidneyUS"] == s3f_experiments.recipe_of(KIDNEY)
        assert s3f_experiments.demo_defaults("Spatial_KidneyUS")["demo_count"] == KIDNEY.demo_count
        assert "Baseline_ResNet50V2_KidneyUS" in s3f_experiments.BASELINE_EXPERIMENTS
        assert "Control_KidneyUS" in s3f_experiments.CONTROL_EXPERIMENTS
        assert {c.dataset for c in s3f_claims.paper_claims()} >= {"KidneyUS"}
        # no paper numbers: sized like the paper's models, not as zero parameters
        for name in ("Spatial_KidneyUS", "S3F_Concat_KidneyUS", "Control_KidneyUS"):
            assert s3f_experiments.estimated_parameters(name, {"img_size": [32, 32]}) > 0, name
        written = synth_all(tmp_path, count=3, size=24)
        assert list(written)[-1] == "KidneyUS" and (written["KidneyUS"] / "test" / "cyst").is_dir()
    for table in tables:
        assert "KidneyUS" not in getattr(s3f_experiments, table), table
    assert "Spatial_KidneyUS" not in s3f_experiments.EXPERIMENTS
    assert "Control_KidneyUS" not in s3f_experiments.CONTROL_EXPERIMENTS


def test_the_page_shows_this_record():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "extending.md").read_text("utf-8")
    section = page[page.index("\n## A fifth dataset\n") : page.index("\n## A new fusion\n")]
    source = Path(__file__).read_text("utf-8")
    record = source[source.index("KIDNEY = DatasetInfo(") : source.index("\n)\n") + 2]
    assert record in section and "with register_dataset(KIDNEY):" in section
