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


def test_a_chain_of_near_duplicates_is_not_one_group():
    """A~B, B~C, C~D with A not like D: connected components made one group of the four;
    every member of a group must be paired with its centre."""
    from data_setup import audit

    chain = [(0, 1), (1, 2), (2, 3)]
    ids, resplit = groups.centred_groups(4, chain)
    assert ids[0] != ids[3] and resplit == 1
    paired = {frozenset(p) for p in chain}
    for group in set(ids.tolist()):
        members = [i for i in range(4) if ids[i] == group]
        assert any(all(frozenset((c, m)) in paired for m in members if m != c) for c in members)
    counts = {}
    assert audit.groups_from_pairs(4, chain, counts).tolist() == ids.tolist()
    assert counts == {"chains_split": 1}
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(50):  # random pair lists: each group has a centre paired with every member
        count = 30
        pairs = [tuple(p) for p in rng.integers(0, count, (40, 2)) if p[0] != p[1]]
        linked = {frozenset(p) for p in pairs}
        ids, _ = groups.centred_groups(count, pairs)
        components = groups.combine_groups(*[[i if k in p else None for k in range(count)]
                                             for i, p in enumerate(pairs)])  # fmt: skip
        for group in set(ids.tolist()):
            members = np.flatnonzero(ids == group).tolist()
            assert len({components[m] for m in members}) == 1  # never across components
            assert any(all(frozenset((c, m)) in linked for m in members if m != c)
                       for c in members)  # fmt: skip
    star = [(0, 1), (0, 2), (0, 3), (1, 2)]  # every member a copy of image 0: kept whole
    assert groups.centred_groups(5, star)[0].tolist() == [0, 0, 0, 0, 1]
    assert groups.centred_groups(5, star)[1] == 0


def _large_groups(seed):
    """Labels and groups of a few large groups per class plus some single images."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sizes = {0: [40, 30, 5, 1, 1, 1], 1: [60, 50, 2, 1]}
    labels, ids = [], []
    for label, parts in sizes.items():
        for size in parts:
            labels += [label] * size
            ids += [f"{label}-{len(set(ids))}"] * size
    order = rng.permutation(len(labels))
    return np.asarray(labels)[order], np.asarray(ids)[order]


def test_assign_groups_puts_every_class_in_every_part_and_keeps_groups_whole():
    import numpy as np

    for seed in range(10):
        labels, ids = _large_groups(seed)
        for shares in ([0.85, 0.15], [1 / 3] * 3, [0.25] * 4):
            part = groups.assign_groups(labels, ids, shares, seed, "test")
            for p in range(len(shares)):
                assert set(labels[part == p]) == {0, 1}, (seed, shares, p)
            for group in set(ids):
                assert len(set(part[ids == group])) == 1
        held = groups.assign_groups(labels, ids, [0.85, 0.15], seed, "test") == 1
        assert 0.05 < held.mean() < 0.35  # near the share the groups allow
        folds = groups.grouped_folds(labels, ids, 4, seed)
        assert sorted(np.concatenate([h for _, h in folds])) == list(range(len(labels)))


def test_a_class_in_too_few_groups_is_one_sentence_naming_it_and_what_to_do():
    labels, ids = _large_groups(0)
    names = [f"img{i}.png" for i in range(len(labels))]
    with pytest.raises(DatasetError) as error:
        groups.grouped_folds(labels, ids, 5, 0, class_names=("benign", "malignant"), names=names)
    message = str(error.value)
    assert message.startswith("cannot make 5 grouped cross-validation folds: class malignant has")
    assert "only 4 groups of 60, 50, 2, 1 images (e.g. img" in message
    assert "use at most 4 folds (--folds 4)" in message and "\n" not in message


def test_largest_group_share_per_class():
    shares = groups.largest_group_share([0, 0, 0, 1, 1], ["a", "a", "b", "c", "d"], ("x", "y"))
    assert shares == {"x": pytest.approx(2 / 3, abs=1e-4), "y": 0.5}
    assert groups.share_words(shares) == "x 67%, y 50%"
