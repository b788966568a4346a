"""Patient and lesion ids (no TensorFlow)."""

import pytest

from data_setup import groups
from data_setup.layouts import DatasetError


@pytest.mark.parametrize(
    ("name", "patient"),
    [
        ("person1946_bacteria_4874.jpeg", "person1946"),
        ("person1946_bacteria_4875.jpeg", "person1946"),
        ("person1000_virus_1681.jpeg", "person1000"),
        ("IM-0115-0001.jpeg", "IM-0115"),
        ("NORMAL2-IM-0381-0001.jpeg", "NORMAL2-IM-0381"),
        ("im-0115-0002.JPEG", "IM-0115"),
        ("scan_0001.jpeg", None),
        ("personX_bacteria_1.jpeg", None),
    ],
)
def test_kermany_patient_ids(name, patient):
    assert groups.kermany_patient(name) == patient


def test_lesion_ids_from_either_csv(tmp_path):
    files = [tmp_path / "images" / f"ISIC_{i:07d}.jpg" for i in range(4)]
    (tmp_path / "HAM10000_metadata.csv").write_text(
        "lesion_id,image_id,dx\nHAM_1,ISIC_0000000,nv\nHAM_1,ISIC_0000001,nv\nHAM_2,ISIC_0000002,mel\n"
    )
    ids, source = groups.image_groups("ham_lesion", tmp_path, files)
    assert ids == ["HAM_1", "HAM_1", "HAM_2", None]
    assert "HAM10000_metadata.csv" in source
    (tmp_path / "HAM10000_metadata.csv").unlink()
    nested = tmp_path / "ISIC2018"
    nested.mkdir()
    (nested / "ISIC2018_Task3_Training_LesionGroupings.csv").write_text(
        "image,lesion_id,diagnosis_confirm_type\nISIC_0000003,HAM_9,histopathology\n"
    )
    ids, _ = groups.image_groups("ham_lesion", tmp_path, files)
    assert ids == [None, None, None, "HAM_9"]


def test_missing_lesion_csv_says_what_to_add(tmp_path):
    ids, source = groups.image_groups("ham_lesion", tmp_path, [tmp_path / "ISIC_1.jpg"])
    assert ids == [None]
    assert "ISIC2018_Task3_Training_LesionGroupings.csv" in source


def test_bad_lesion_csv_is_one_clear_error(tmp_path):
    path = tmp_path / "HAM10000_metadata.csv"
    path.write_text("image,dx\nISIC_1,nv\n")
    with pytest.raises(DatasetError, match="expected 'image_id' and 'lesion_id'"):
        groups.read_lesion_csv(path)
    path.write_bytes(b"lesion_id,image_id\n\xff\xfe\n")
    with pytest.raises(DatasetError, match="not UTF-8"):
        groups.read_lesion_csv(path)


def test_group_report_names_groups_two_splits_share():
    report = groups.group_report({"train": ["p1", "p1", "p2", None], "test": ["p2", "p3"]})
    assert report["groups"] == {"train": 2, "test": 2}
    assert report["ungrouped"] == {"train": 1, "test": 0}
    assert report["largest"]["train"] == 2
    assert report["shared"] == {"test/train": ["p2"]}


def test_combine_groups_is_transitive_across_labelings():
    patients = ["p1", "p1", None, "p2", None]
    duplicates = [None, 7, 7, None, None]  # image 1 (p1) is a copy of image 2
    assert groups.combine_groups(patients, duplicates) == [0, 0, 0, 1, 2]
    with pytest.raises(ValueError, match="different lengths"):
        groups.combine_groups([1, 2], [1])


def test_grouped_folds_keep_each_group_on_one_side():
    import numpy as np

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 40)
    ids = [f"patient{i // 3}" for i in range(120)]  # three images per patient
    rng.shuffle(ids)
    folds = groups.grouped_folds(labels, groups.combine_groups(ids), folds=4, seed=1)
    assert len(folds) == 4
    held_all = np.concatenate([held for _, held in folds])
    assert sorted(held_all) == list(range(120))  # every image held out exactly once
    for fit, held in folds:
        assert not {ids[i] for i in fit} & {ids[i] for i in held}
        assert set(labels[fit]) == {0, 1, 2}
    with pytest.raises(DatasetError, match="cannot make 5 grouped folds from 3"):
        groups.grouped_folds([0, 1, 0, 1], [0, 0, 1, 2], folds=5, seed=0)
