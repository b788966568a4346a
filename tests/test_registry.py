"""The registry holds every number the paper printed (docs/paper.md §6.1, §6.2), consistently."""

import pytest

from s3f_kit import experiments as s3f_experiments


def test_every_experiment_has_the_full_printed_row():
    for name, exp in s3f_experiments.EXPERIMENTS.items():
        paper = s3f_experiments.paper_metrics(name)
        binary = exp.num_classes == 2
        expected = {"accuracy", "weighted_f1", "macro_f1", "cohen_kappa", "mcc", "loss"}
        expected |= {"roc_auc", "positive_f1"} if binary else {"roc_auc_macro", "roc_auc_weighted"}
        assert expected | {"epochs_run", "best_epoch"} <= set(paper), name
        # the README numbers are the registry's, rounded
        assert round(paper["accuracy"] * 100, 2) == exp.paper.accuracy
        for key in expected - {"loss"}:
            assert 0 < paper[key] <= 1, (name, key)
        assert 0 < paper["best_epoch"] <= paper["epochs_run"] <= exp.recipe.epochs
        # early stopping on F1: a run stops `patience` epochs after its best (or at the budget)
        assert paper["epochs_run"] in (
            paper["best_epoch"] + exp.recipe.f1_patience,
            exp.recipe.epochs,
        ), name
        assert paper["cohen_kappa"] <= paper["accuracy"]


def test_test_support_matches_the_class_lists():
    for dataset, support in s3f_experiments.PAPER_TEST_SUPPORT.items():
        assert len(support) == len(s3f_experiments.DATASETS[dataset].class_names)
    assert sum(s3f_experiments.PAPER_TEST_SUPPORT["BRISC2025"]) == 1010
    assert sum(s3f_experiments.PAPER_TEST_SUPPORT["HAM10000"]) == 1512


@pytest.mark.parametrize("dataset", ["BRISC2025", "ChestXRay", "BUSI", "HAM10000"])
def test_paper_contributions_are_concat_models_with_complementary_shares(dataset):
    shares = s3f_experiments.paper_contributions(dataset)
    assert shares["fusion"] == "concat"
    assert shares["spectranet"] == (2 if dataset == "BUSI" else 1)
    assert shares["l2_spatial"] + shares["l2_spectral"] == pytest.approx(100)
    classes = s3f_experiments.DATASETS[dataset].class_names
    assert tuple(shares["balanced_spatial_per_class"]) == classes
