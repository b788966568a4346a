"""The acquisition-swap test and the shortcut-neutral arms (issue 35, items 2 and 3): a model
trained on a planted storage shortcut flips when a test image is given the other class's
storage, one trained on content does not; the arms keep the aspect ratio and leave no
class-linked border; the run records the audit, cached."""

import json

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from sklearn.ensemble import RandomForestClassifier

from data_setup.datasets import DATASETS
from data_setup.decode import RESIZE_MODES, decode_image, resized
from data_setup.layouts import discover
from data_setup.shortcuts import (
    FLAG_KAPPA,
    _classify,
    recorded_summary,
    score,
    shortcut_audit,
    tensor_features,
)
from data_setup.swap import acquisition_swap, lesion_masks, signature_of, stored_as
from s3f_kit.experiments import PAPER_BN_MOMENTUM as BN

CHEST = DATASETS["ChestXRay"]
SIZE = (64, 64)  # what the test models see
TRAIN, TEST = 30, 12  # images per class


def _field(rng, height, width, sigma=3.0, level=0.5):
    """Smooth gray content (blurred noise) around a mean level: no class owns its texture."""
    field = gaussian_filter(rng.normal(size=(height, width)), sigma)
    field = (field - field.mean()) / (field.std() + 1e-9)
    return np.clip(255 * (level + 0.15 * field), 0, 255).astype(np.uint8)


def _store(pixels, path, storage):
    if storage == "gray_jpeg_q30":
        Image.fromarray(pixels).save(path.with_suffix(".jpeg"), quality=30)
    else:  # RGB PNG
        Image.fromarray(pixels).convert("RGB").save(path.with_suffix(".png"))


def _chest(root, classes, seed=0):
    """A ChestXRay layout; classes: {name: (storage, (height, width), mean level)}."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", TRAIN), ("test", TEST)):
        for name, (storage, (height, width), level) in classes.items():
            folder = root / "chest_xray" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = _field(rng, height, width, level=level)
                _store(pixels, folder / f"person{i}_{name}_{split}", storage)
    return root


SHORTCUT = {  # same content; NORMAL stored gray JPEG q30 at 4:3 (squashed by the decode)
    "NORMAL": ("gray_jpeg_q30", (72, 96), 0.5),
    "PNEUMONIA": ("rgb_png", (96, 96), 0.5),
}


def _model(root):
    """A classifier trained on what the kit's decode makes of the train split (tensor
    features, random forest), as a batch → probabilities function."""
    listing = discover(CHEST, root)
    rows, labels = [], []
    for path, label in listing.splits["train"]:
        rows.append(list(tensor_features(decode_image(path, SIZE, 1)).values()))
        labels.append(label)
    forest = RandomForestClassifier(200, random_state=0).fit(rows, labels)

    def predict(batch):
        features = [list(tensor_features(np.round(x * 255)).values()) for x in batch]
        return forest.predict_proba(features)

    return predict


def _swap(models, root):
    found = shortcut_audit(CHEST, root, probe=False)
    items = discover(CHEST, root).splits["test"]
    return acquisition_swap(models, items, found["per_class"], CHEST.class_names, SIZE, 1)


def test_a_model_trained_on_a_planted_shortcut_flips_one_trained_on_content_does_not(tmp_path):
    shortcut_root = _chest(tmp_path / "shortcut", SHORTCUT)
    content = {  # the classes differ in brightness, every file stored alike
        "NORMAL": ("rgb_png", (96, 96), 0.3),
        "PNEUMONIA": ("rgb_png", (96, 96), 0.7),
    }
    content_model = _model(_chest(tmp_path / "content", content, seed=1))
    # the test images: the planted storage *and* the content difference, so both models are
    # right on them and each can be asked whether storage moves it
    test_root = _chest(tmp_path / "test", {
        "NORMAL": ("gray_jpeg_q30", (72, 96), 0.3), "PNEUMONIA": ("rgb_png", (96, 96), 0.7),
    }, seed=2)  # fmt: skip
    models = {"shortcut": _model(shortcut_root), "content": content_model}
    result = _swap(models, test_root)
    json.dumps(result)  # JSON-safe
    signatures = result["signatures"]
    assert signatures["NORMAL"]["format"] == "JPEG" and signatures["NORMAL"]["quality"] == 30
    assert signatures["NORMAL"]["mode"] == "L"
    assert (signatures["NORMAL"]["width"], signatures["NORMAL"]["height"]) == (96, 72)
    assert signatures["PNEUMONIA"] == {"mode": "RGB", "format": "PNG", "quality": None,
                                       "width": 96, "height": 96}  # fmt: skip
    shortcut, clean = result["models"]["shortcut"], result["models"]["content"]
    assert result["images"] == 2 * TEST
    assert shortcut["accuracy"]["rate"] >= 0.9 and clean["accuracy"]["rate"] >= 0.9
    # storage moves the shortcut model: swapped images follow the storage's class, above all
    # those given the lossy JPEG (a lossless copy of a q30 file still carries its blocks)
    assert shortcut["per_class"]["NORMAL"]["ci"][0] > 0.3, shortcut
    assert shortcut["control_flips"]["rate"] <= 0.1  # re-encoding alone moves little
    assert clean["flips"]["ci"][1] < shortcut["flips"]["ci"][0]  # the intervals apart
    assert clean["flips"]["rate"] <= 0.1 and clean["control_flips"]["rate"] <= 0.1, clean
    for model in (shortcut, clean):
        low, high = model["flips"]["ci"]
        assert low <= model["flips"]["rate"] <= high


def test_the_swap_needs_two_profiles_and_lists_unreadable_files(tmp_path):
    root = _chest(tmp_path / "d", SHORTCUT)
    found = shortcut_audit(CHEST, root, probe=False)
    items = discover(CHEST, root).splits["test"][:2]
    with pytest.raises(ValueError, match="at least two classes"):
        acquisition_swap({}, items, {"NORMAL": found["per_class"]["NORMAL"]},
                         CHEST.class_names, SIZE, 1)  # fmt: skip
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    result = acquisition_swap({}, [*items, (broken, 0)], found["per_class"],
                              CHEST.class_names, SIZE, 1)  # fmt: skip
    assert result["images"] == 2 and result["left_out_count"] == 1
    assert result["left_out"][0][0] == str(broken) and "Pillow cannot read it" in (
        result["left_out"][0][1]
    )


def test_stored_as_gives_the_signature():
    profile = {"stored": {"gray": 0.9, "rgb": 0.1}, "format": {"JPEG": 1.0},
               "median_jpeg_quality": 40.0, "median_width": 400.0, "median_height": 300.0,
               "median_aspect": 4 / 3}  # fmt: skip
    signature = signature_of(profile)
    raw = stored_as(np.full((90, 90, 3), 128, np.uint8), signature)
    from io import BytesIO

    from data_setup.shortcuts import jpeg_quality

    with Image.open(BytesIO(raw)) as im:
        assert (im.format, im.mode) == ("JPEG", "L")
        assert im.size == (400, 300)
        assert jpeg_quality(im.quantization) == 40


def test_the_lesion_is_masked_out_where_the_dataset_ships_masks(tmp_path):
    """BUSI's masks (the synthetic demo writes them too): a model that reads the lesion
    loses it; the record says how many predictions were kept."""
    from data_setup.synth import synth_dataset

    root = synth_dataset("BUSI", tmp_path / "busi", count=6, size=64)
    listing = discover(DATASETS["BUSI"], root)
    items = listing.splits["all"]
    assert all(lesion_masks(path) for path, _ in items)
    found = shortcut_audit(DATASETS["BUSI"], root, probe=False)

    def bright_centre(batch):  # "lesion present" when anything in it is bright
        score = (batch.reshape(len(batch), -1) > 0.85).mean(axis=1, keepdims=True) * 50
        return np.hstack([1 - np.clip(score, 0, 1), np.clip(score, 0, 1), np.zeros_like(score)])

    result = acquisition_swap({"reads the lesion": bright_centre}, items, found["per_class"],
                              DATASETS["BUSI"].class_names, (64, 64), 1, masks=True)  # fmt: skip
    masked = result["models"]["reads the lesion"]["lesion_masked"]
    assert masked["kept_prediction"]["of"] == len(items)
    assert masked["kept_prediction"]["rate"] < 1  # painting the lesion out changed predictions


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_the_resize_arms(mode):
    """squash fills the input with the whole image; crop and reflect keep its aspect ratio (a
    circle stays round), and reflect pads by mirroring: no constant bar."""
    image = np.zeros((300, 400), np.uint8)
    image[100:200, 150:250] = 255  # a square in the middle of a 4:3 image
    out = resized(image, (64, 64), mode)
    assert out.shape == (64, 64)
    rows, cols = np.nonzero(out > 127)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    if mode == "squash":
        assert height / width > 1.2  # the square became tall
    else:
        assert abs(height / width - 1) < 0.1
    if mode == "reflect":  # the padded top and bottom mirror the image's own rows
        noise = np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8)
        out, top = resized(noise, (64, 64), mode), (64 - 48) // 2
        assert np.array_equal(out[top - 1], out[top + 1]) and out[:top].std() > 10
    with pytest.raises(ValueError, match="resize must be one of"):
        resized(image, (64, 64), "stretch")


def test_the_padding_arm_leaves_no_class_linked_border_statistic(tmp_path):
    """4:3 files in one class, square in the other, the same content: the border statistics
    of what the network sees tell the classes apart when the pad is constant (black bars),
    and not with the reflect arm's mirrored padding (the tensor probe's own classifier)."""
    import cv2

    rng = np.random.default_rng(3)
    images, labels, is_test = [], [], []
    for split, count in (("train", 40), ("test", 20)):
        for label, shape in enumerate([(72, 96), (96, 96)]):
            for _ in range(count):
                path = tmp_path / f"{split}{label}_{len(images)}.png"
                Image.fromarray(_field(rng, *shape)).save(path)
                images.append(path)
                labels.append(label)
                is_test.append(split == "test")

    def letterbox(path):  # the arm done wrong: fit the long side, pad with black
        pixels = np.asarray(Image.open(path))
        fitted = resized(pixels, (64, 64), "reflect")
        h, w = pixels.shape
        new_h, new_w = round(h * 64 / max(h, w)), round(w * 64 / max(h, w))
        inside = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_AREA)
        top = (64 - new_h) // 2
        out = np.zeros_like(fitted)
        out[top : top + new_h, :new_w] = inside
        return out[..., None]

    border = ("border_mean", "border_std", "border_minus_inside")

    def kappa(decode):
        rows = [{k: tensor_features(decode(p))[k] for k in border} for p in images]
        return score(*_classify(rows, labels, np.array(is_test), None, 0), 0)["kappa"]

    assert kappa(letterbox) >= FLAG_KAPPA  # the statistic is there to find
    assert kappa(lambda p: decode_image(p, (64, 64), 1, "reflect")) < FLAG_KAPPA


def test_the_run_records_the_audit_once_then_reads_it_back(tmp_path, monkeypatch):
    import data_setup.shortcuts as shortcuts

    root = _chest(tmp_path / "d", SHORTCUT)
    listing = discover(CHEST, root)
    first = recorded_summary(CHEST, listing, tmp_path / "cache")
    assert first["assessed"] and first["flagged"] and first["kappa"] >= FLAG_KAPPA
    assert first["header_only"] and len(json.dumps(first)) < 4000
    assert set(first["per_class"]) == {"NORMAL", "PNEUMONIA"}
    audit = shortcuts.shortcut_audit
    monkeypatch.setattr(shortcuts, "shortcut_audit", lambda *a, **k: pytest.fail("audited again"))
    assert recorded_summary(CHEST, listing, tmp_path / "cache") == first
    # a cached summary goes into metrics.json: one too large, or of the wrong kinds, is redone
    (cached,) = (tmp_path / "cache").glob("ChestXRay_shortcuts_*.json")
    audits = []
    monkeypatch.setattr(shortcuts, "shortcut_audit", lambda *a, **k: audits.append(1) or audit(
        *a, **k))  # fmt: skip
    for planted in ({**first, "version": 1, "per_class": "x" * 70_000},
                    {**first, "version": 1, "kappa": "high"}, [1, 2]):  # fmt: skip
        cached.write_text(json.dumps(planted))
        assert recorded_summary(CHEST, listing, tmp_path / "cache") == first
    assert len(audits) == 3


def test_the_arms_are_part_of_a_runs_identity_only_when_not_the_papers():
    from s3f_kit import config as s3f_config

    assert s3f_config.run_subdir("S3F_Concat_BUSI", {}) == "S3F_Concat_BUSI/seed42"
    paper = {"resize": "squash", "reencode": False}
    assert s3f_config.run_subdir("S3F_Concat_BUSI", paper) == "S3F_Concat_BUSI/seed42"
    arms = {"resize": "reflect", "reencode": True}
    assert s3f_config.run_subdir("S3F_Concat_BUSI", arms) == (
        "S3F_Concat_BUSI/reflect-reencode/seed42"
    )
    assert s3f_config.run_subdir("Spatial_BUSI", {"resize": "crop"}) == "Spatial_BUSI/crop/seed42"
    settings = s3f_config.expected_settings("Spatial_BUSI", {"reencode": "true"})
    assert settings["reencode"] is True and settings["resize"] == "squash"
    with pytest.raises(ValueError, match="resize must be one of 'squash', 'crop', 'reflect'"):
        s3f_config.RunConfig("Spatial_BUSI", resize="stretch").checked()


def test_an_arm_decodes_into_its_own_cache_entry_and_the_papers_keep_their_names(tmp_path):
    from data_setup.loading import load_dataset

    root, cache = _chest(tmp_path / "d", SHORTCUT), tmp_path / "cache"
    paper = load_dataset("ChestXRay", root, img_size=(32, 32), cache_dir=cache)
    names = sorted(p.name for p in cache.glob("*.npy"))
    assert names and all("x1_" in name for name in names)  # ChestXRay_train_32x32x1_<key>
    arm = load_dataset("ChestXRay", root, img_size=(32, 32), cache_dir=cache, resize="reflect",
                       reencode=True)  # fmt: skip
    assert (arm.resize, arm.reencode) == ("reflect", True)
    assert (paper.resize, paper.reencode) == ("squash", False)
    new = sorted(p.name for p in cache.glob("*.npy") if p.name not in names)
    assert len(new) == len(names) and all("x1-reflect-reencode_" in name for name in new)
    normal = paper.splits["test"].labels == 0  # 4:3 files: the squash and the reflect differ
    assert not np.array_equal(paper.splits["test"].images(False)[normal],
                              arm.splits["test"].images(False)[normal])  # fmt: skip
    path = root / "chest_xray" / "test" / "NORMAL" / "person0_NORMAL_test.jpeg"
    expected = decode_image(path, (32, 32), 1, "reflect", True)
    assert np.array_equal(arm.splits["test"].images(False)[arm.splits["test"].files.index(
        str(path.relative_to(arm.root)))], expected)  # fmt: skip
    with pytest.raises(ValueError, match="resize must be one of"):
        load_dataset("ChestXRay", root, img_size=(32, 32), cache_dir=cache, resize="pad")


def test_a_model_trained_with_an_arm_is_served_its_images_the_same_way(tmp_path):
    from s3f_preprocessing import Preprocessing

    prep = Preprocessing("BUSI", ("a", "b"), (32, 32), 1, "x", resize="crop", reencode=True)
    prep.save(tmp_path / "preprocessing.json")
    back = Preprocessing.load(tmp_path / "preprocessing.json")
    assert (back.resize, back.reencode) == ("crop", True) and "(crop)" in back.describe()
    old = {"class_names": ["a", "b"], "image_size": [32, 32], "channels": 1}  # before the arms
    assert Preprocessing.from_json(old, "old").resize == "squash"
    with pytest.raises(ValueError, match="bad.json: resize 'pad' is not supported"):
        Preprocessing.from_json({**old, "resize": "pad"}, "bad.json")
    from s3f_kit.apply.predict import load_image

    image = tmp_path / "wide.png"
    Image.fromarray(_field(np.random.default_rng(0), 30, 60)).save(image)
    served = load_image(image, back)
    assert np.array_equal(np.round(served * 255), decode_image(image, (32, 32), 1, "crop", True))


def test_the_command_scores_the_model_beside_the_baseline(keras, tmp_path, capsys, monkeypatch):
    """s3f-swap: both models on the same test images (the run folder's split.csv), the lesion
    masked out where BUSI's masks lie, the findings beside the model; bad input is one line."""
    import s3f_common
    from data_setup.synth import synth_dataset
    from s3f_kit.apply.swap import SWAP_FILE, main
    from tests.helpers import run_folder

    monkeypatch.setenv("S3F_CACHE_DIR", str(tmp_path / "cache"))
    root = synth_dataset("BUSI", tmp_path / "busi", count=6, size=48)
    s3f_model = s3f_common.build_model("s3f", (16, 16, 1), 3, "concat", 1, bn_momentum=BN)
    spatial_model = s3f_common.build_model("spatial", (16, 16, 1), 3, bn_momentum=BN)
    s3f = run_folder(tmp_path / "s3f", s3f_model, "BUSI", (16, 16), 1)
    spatial = run_folder(tmp_path / "spatial", spatial_model, "BUSI", (16, 16), 1)
    files = sorted(p.relative_to(root) for p in root.rglob("*).png"))
    rows = ["file,split"] + [f"{f},{'test' if i % 2 else 'train'}" for i, f in enumerate(files)]
    (s3f / "split.csv").write_text("\n".join(rows) + "\n")
    assert main([str(s3f), str(root), "--baseline", str(spatial)]) == 0
    found = json.loads((s3f / SWAP_FILE).read_text())
    assert found["images"] == len(files) // 2 and "split.csv" in found["test_images"]
    assert set(found["models"]) == {f"model: {s3f}", f"baseline: {spatial}"}
    for scored in found["models"].values():
        assert scored["flips"]["of"] == found["images"] * 2  # two other classes each
        assert scored["lesion_masked"]["kept_prediction"]["of"] == found["images"]
    printed = capsys.readouterr().out
    assert "given another class's storage" in printed and "lesion masked out" in printed
    assert main([str(s3f), str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("s3f-swap: error:") and "nowhere" in error[0]


def test_chunks_and_the_sample_bound_change_nothing_but_the_count(tmp_path, monkeypatch):
    import data_setup.swap as swap

    root = _chest(tmp_path / "d", SHORTCUT)
    found = shortcut_audit(CHEST, root, probe=False)
    items = discover(CHEST, root).splits["test"]

    def brightness(batch):  # a model of the mean level: moved by JPEG's and the crop's changes
        level = batch.reshape(len(batch), -1).mean(axis=1, keepdims=True)
        return np.hstack([level, 0.5 * np.ones_like(level)])

    def run():
        return acquisition_swap({"m": brightness}, items, found["per_class"], CHEST.class_names,
                                SIZE, 1)  # fmt: skip

    whole = run()
    monkeypatch.setattr(swap, "CHUNK", 5)  # chunks that split the classes and the test set
    assert run() == whole and whole["images"] == 2 * TEST
    monkeypatch.setattr(swap, "MAX_IMAGES", 7)
    sampled = run()
    assert sampled["sampled"] and sampled["images"] == 7 and not whole["sampled"]


def test_a_one_sigmoid_head_is_read_at_its_threshold_not_by_argmax():
    """The paper's two-class models end in one sigmoid unit: argmax over that one column called
    every image class 0, so a perfect Chest X-Ray model read as 50 % before any swap."""
    from data_setup.swap import _predicted

    images = [np.full((4, 4, 1), value, np.uint8) for value in (0, 200, 30, 255)]
    sigmoid = lambda batch: batch.reshape(len(batch), -1).mean(axis=1, keepdims=True)  # noqa: E731
    assert _predicted(sigmoid, images).tolist() == [0, 1, 0, 1]
    softmax = lambda batch: np.stack([1 - sigmoid(batch)[:, 0], sigmoid(batch)[:, 0]], axis=1)  # noqa: E731
    assert _predicted(softmax, images).tolist() == [0, 1, 0, 1]


def test_a_run_prints_the_audit_verdict_and_the_swap_in_a_few_lines():
    from data_setup.swap import run_lines

    rate = {"count": 1, "of": 10, "rate": 0.1, "ci": [0.02, 0.4]}
    swapped = {"assessed": True, "images": 10, "sampled": False,
               "signatures": {"a": {"mode": "L", "format": "JPEG", "quality": 30, "width": 4,
                                    "height": 3}},
               "models": {"m": {"accuracy": rate, "flips": rate,
                                "control_flips": rate}}}  # fmt: skip
    flagged = {"assessed": True, "kappa": 0.58, "kappa_ci": [0.5, 0.66], "flagged": True}
    lines = run_lines(flagged, swapped)
    assert "κ +0.58 [+0.50, +0.66], FLAGGED" in lines[0]
    assert any("10.0% [2.0, 40.0] of 10 flip" in line for line in lines)
    assert run_lines({"assessed": False}, {"assessed": False, "why": "one class"}) == [
        "Acquisition swap: not run (one class)"
    ]
