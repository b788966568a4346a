"""data_setup: the four layouts, protocols, the cache, bad input, the CLI, fetch, synth."""

import hashlib
import http.server
import io
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import data_setup.cache as cache
import data_setup.loading as loading
from data_setup import DatasetError, load_dataset, synth_dataset
from data_setup.__main__ import main as cli
from data_setup.fetch import FetchError, fetch

SIZE = (24, 32)


def _load(dataset, root, tmp_path, **kw):
    return load_dataset(dataset, root, img_size=SIZE, cache_dir=tmp_path / "cache", **kw)


# ---------------------------------------------------------------- layouts and protocols
@pytest.mark.parametrize(
    "dataset,channels,classes,train,test",
    [
        ("BRISC2025", 1, ["glioma", "meningioma", "no_tumor", "pituitary"], 24, 12),
        ("ChestXRay", 1, ["NORMAL", "PNEUMONIA"], 12 + 4, 6),  # train/ + val/, as the paper
        ("BUSI", 1, ["benign", "malignant", "normal"], 21, 6),
        ("HAM10000", 3, ["MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"], 42, 21),
    ],
)
def test_each_layout_loads_under_the_paper_protocol(
    dataset, channels, classes, train, test, synth_root, tmp_path
):
    data = _load(dataset, synth_root / dataset, tmp_path)
    assert data.class_names == classes
    assert data.input_shape == (*SIZE, channels)
    assert len(data.splits["train"]) == train and len(data.splits["test"]) == test
    assert data.splits["val"] is data.splits["test"]  # the paper validated on the test set
    x = data.splits["test"].images()
    assert x.shape == (test, *SIZE, channels) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert not set(data.splits["train"].files) & set(data.splits["test"].files)
    assert data.skipped == [] and len(data.fingerprint) == 16
    assert all("_mask" not in f for f in data.splits["train"].files + data.splits["test"].files)


def test_busi_split_is_stratified_80_20_with_seed_42(synth_root, tmp_path):
    a = _load("BUSI", synth_root / "BUSI", tmp_path)
    b = _load("BUSI", synth_root / "BUSI", tmp_path / "other")
    assert a.splits["test"].files == b.splits["test"].files
    counts = a.counts()
    assert all(v == 2 for v in counts["test"].values())  # 9 per class → 7 / 2
    assert sum(counts["train"].values()) + sum(counts["test"].values()) == 27


def test_holdout_protocol_carves_validation_from_train(synth_root, tmp_path):
    def holdout():
        root = synth_root / "BRISC2025"
        return _load("BRISC2025", root, tmp_path, protocol="holdout", val_fraction=0.25, seed=3)

    data = holdout()
    train, val, test = (data.splits[k] for k in ("train", "val", "test"))
    # about a quarter of train: near-duplicate groups (data_setup.audit) stay on one side
    assert 5 <= len(val) <= 8 and len(train) + len(val) == 24 and len(test) == 12
    assert not set(train.files) & set(val.files)
    assert not (set(train.files) | set(val.files)) & set(test.files)
    assert all(n >= 1 for n in data.counts()["val"].values())
    assert holdout().splits["val"].files == val.files  # same seed, same split


def test_class_weights_are_balanced_from_training_labels(copy_of, tmp_path):
    root = copy_of("ChestXRay")
    for path in sorted((root / "chest_xray/train/NORMAL").iterdir())[:3]:
        path.unlink()  # train/: 3 NORMAL vs 6 PNEUMONIA; val/ adds 2 + 2 (trained on, as the paper)
    weights = _load("ChestXRay", root, tmp_path).class_weights()
    assert weights == pytest.approx({0: 13 / (2 * 5), 1: 13 / (2 * 8)})


@pytest.mark.parametrize("sub", ["", "chest_xray", "chest_xray/.."])
def test_accepts_the_unzipped_folder_or_its_parent(sub, synth_root, tmp_path):
    data = _load("ChestXRay", synth_root / "ChestXRay" / sub, tmp_path)
    assert data.root.name == "chest_xray"


def test_tf_dataset_batches_match_labels(synth_root, tmp_path, keras):
    data = _load("HAM10000", synth_root / "HAM10000", tmp_path)
    batches = list(data.tf_dataset("test", batch_size=8))
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(y, data.splits["test"].labels)
    np.testing.assert_allclose(x, data.splits["test"].images(), atol=1e-7)
    shuffled = np.concatenate([b[1].numpy() for b in data.tf_dataset("train", 8, True, seed=1)])
    assert sorted(shuffled) == sorted(data.splits["train"].labels)
    assert not np.array_equal(shuffled, data.splits["train"].labels)


# ---------------------------------------------------------------- cache
def test_cache_hit_miss_and_invalidation(copy_of, tmp_path, monkeypatch):
    root = copy_of("BRISC2025")
    first = _load("BRISC2025", root, tmp_path)
    assert isinstance(first.splits["train"].source.images, np.memmap)
    calls = []
    real_decode = cache.decode_bytes  # what the cache decodes each file with
    monkeypatch.setattr(cache, "decode_bytes", lambda *a: calls.append(a) or real_decode(*a))
    second = _load("BRISC2025", root, tmp_path)  # hit: nothing decoded
    assert calls == []
    np.testing.assert_array_equal(second.splits["test"].images(), first.splits["test"].images())
    load_dataset("BRISC2025", root, img_size=(16, 16), cache_dir=tmp_path / "cache")  # miss
    assert len(calls) == 36
    calls.clear()
    changed = sorted((root / "classification_task/test/glioma").iterdir())[0]
    shutil.copy(sorted((root / "classification_task/test/pituitary").iterdir())[0], changed)
    third = _load("BRISC2025", root, tmp_path)  # the test split changed: it alone is re-decoded
    assert len(calls) == 12
    assert third.fingerprint != first.fingerprint
    assert not list((tmp_path / "cache").glob("*.tmp*"))


# ---------------------------------------------------------------- bad input
def test_bad_images_are_skipped_with_a_warning_naming_each(copy_of, tmp_path):
    root = copy_of("BRISC2025")
    folder = root / "classification_task/train/glioma"
    files = sorted(folder.iterdir())
    files[0].write_bytes(b"")  # zero bytes
    raw = files[1].read_bytes()
    files[1].write_bytes(raw[: len(raw) * 2 // 3])  # cut off, but OpenCV still decodes it
    files[2].write_bytes(b"this is not a jpeg at all" * 40)  # unreadable
    (folder / "notes.txt").write_text("stray file")
    with pytest.warns(UserWarning) as record:
        data = _load("BRISC2025", root, tmp_path)
    text = "\n".join(str(w.message) for w in record)
    for path in files[:3]:
        assert str(path.name) in text
    assert "empty file" in text and "cut off" in text and "not a decodable image" in text
    assert "notes.txt" in text
    assert len(data.skipped) == 2  # the paper used what OpenCV decodes: the cut-off JPEG too
    assert len(data.splits["train"]) == 22
    assert data.counts()["train"]["glioma"] == 4
    assert [why for f, why in data.damaged if f.endswith(files[1].name)] == [
        "JPEG cut off (no end-of-image marker after its last scan)"
    ]
    strict = _load("BRISC2025", root, tmp_path, skip_damaged=True)
    assert len(strict.splits["train"]) == 21 and not strict.damaged


def test_ham_csv_rows_without_images_and_images_without_rows(copy_of, tmp_path):
    root = copy_of("HAM10000")
    lines = (root / "GroundTruth.csv").read_text().splitlines()
    missing_id = lines[1].split(",")[0]
    (root / "images" / f"{missing_id}.jpg").unlink()
    orphan = root / "images" / "ISIC_9999999.jpg"
    shutil.copy(root / "images" / f"{lines[2].split(',')[0]}.jpg", orphan)
    with pytest.warns(UserWarning) as record:
        data = _load("HAM10000", root, tmp_path)
    text = "\n".join(str(w.message) for w in record)
    assert f"{missing_id}.jpg: listed in GroundTruth.csv" in text
    assert "ISIC_9999999.jpg: image with no row in GroundTruth.csv" in text
    assert len(data.splits["train"]) == 41
    assert len(data.problems) == 2


def test_ham_csv_with_wrong_columns_is_an_error(copy_of, tmp_path):
    root = copy_of("HAM10000")
    csv_path = root / "GroundTruth.csv"
    csv_path.write_text(csv_path.read_text().replace("MEL,NV", "NV,MEL", 1))
    with pytest.raises(DatasetError, match=r"GroundTruth.csv: columns .* expected"):
        _load("HAM10000", root, tmp_path)


def test_missing_class_folder_is_an_error_naming_it(copy_of, tmp_path):
    root = copy_of("BRISC2025")
    shutil.rmtree(root / "classification_task/test/pituitary")
    with pytest.raises(DatasetError, match=r"test: missing class folder\(s\) pituitary"):
        _load("BRISC2025", root, tmp_path)


def test_empty_split_is_an_error(copy_of, tmp_path):
    root = copy_of("ChestXRay")
    for folder in (root / "chest_xray/test").iterdir():
        for path in folder.iterdir():
            path.unlink()
    with pytest.raises(DatasetError, match="split 'test' has no images"):
        _load("ChestXRay", root, tmp_path)


def test_split_of_only_unreadable_images_is_an_error(copy_of, tmp_path):
    root = copy_of("ChestXRay")
    for path in (root / "chest_xray/test").rglob("*.jpeg"):
        path.write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="no readable images"):
        _load("ChestXRay", root, tmp_path)


def test_wrong_and_misspelled_roots_are_clear_errors(synth_root, tmp_path):
    with pytest.raises(DatasetError, match=r"chest_xrya: folder does not exist"):
        _load("ChestXRay", synth_root / "chest_xrya", tmp_path)
    with pytest.raises(
        DatasetError, match=r"no BUSI breast ultrasound found.*Dataset_BUSI_with_GT"
    ):
        _load("BUSI", synth_root / "HAM10000", tmp_path)


def test_grayscale_and_rgb_files_are_converted_to_the_datasets_channels(copy_of, tmp_path):
    import cv2

    brisc = copy_of("BRISC2025")
    rgb_jpeg = sorted((brisc / "classification_task/train/glioma").iterdir())[0]
    image = cv2.imread(str(rgb_jpeg), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(rgb_jpeg), cv2.merge([image, image // 2, image]))  # 3-channel file
    data = _load("BRISC2025", brisc, tmp_path)
    assert data.splits["train"].images().shape[-1] == 1
    ham = copy_of("HAM10000")
    gray_file = next((ham / "images").iterdir())
    cv2.imwrite(str(gray_file), cv2.imread(str(gray_file), cv2.IMREAD_GRAYSCALE))
    data = _load("HAM10000", ham, tmp_path)
    row = data.splits["train"].files.index(f"images/{gray_file.name}")
    pixels = data.splits["train"].images()[row]
    assert pixels.shape[-1] == 3 and np.allclose(pixels[..., 0], pixels[..., 2])


def test_rgb_is_converted_from_opencv_bgr(tmp_path):
    import cv2

    path = tmp_path / "red.png"
    bgr = np.zeros((10, 10, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(path), bgr)
    rgb = loading.decode_image(path, (8, 8), 3)
    assert rgb[..., 0].min() == 255 and rgb[..., 2].max() == 0


# ---------------------------------------------------------------- command line
def test_check_command_reports_counts_and_problem_files(copy_of, capsys):
    root = copy_of("ChestXRay")
    folder = root / "chest_xray/train/PNEUMONIA"
    truncated, empty = sorted(folder.iterdir())[:2]
    raw = truncated.read_bytes()
    truncated.write_bytes(raw[: len(raw) * 2 // 3])  # decodes: a warning, still used
    empty.write_bytes(b"")
    assert cli(["check", "ChestXRay", str(root)]) == 0
    out = capsys.readouterr().out
    assert "train     15  NORMAL=8  PNEUMONIA=7" in out  # train/ + val/, minus the empty file
    assert f"{truncated}: JPEG cut off" in out and "(used)" in out
    assert f"{empty}: empty file" in out
    assert cli(["check", "ChestXRay", str(root), "--strict"]) == 0
    assert "train     14  NORMAL=8  PNEUMONIA=6" in capsys.readouterr().out


def test_check_command_fails_clearly_on_a_wrong_root(synth_root, capsys):
    assert cli(["check", "BRISC2025", str(synth_root / "ChestXRay")]) == 1
    err = capsys.readouterr().err
    assert "no BRISC2025 brain MRI" in err and "classification_task" in err


def test_synth_is_deterministic_by_seed(tmp_path):
    def digest(root):
        h = hashlib.sha256()
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                h.update(path.name.encode() + path.read_bytes())
        return h.hexdigest()

    synth_dataset("BUSI", tmp_path / "a", count=3, size=40, seed=5)
    synth_dataset("BUSI", tmp_path / "b", count=3, size=40, seed=5)
    synth_dataset("BUSI", tmp_path / "c", count=3, size=40, seed=6)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")
    assert list((tmp_path / "a/Dataset_BUSI_with_GT/benign").glob("*_mask.png"))


# ---------------------------------------------------------------- fetch (local server only)
def _zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder.parent))
    return buffer.getvalue()


@pytest.fixture
def http_server():
    """Serve `routes` (path → (bytes, announced length)) on 127.0.0.1."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in routes:
                self.send_error(404)
                return
            body, announced = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(announced))
            self.end_headers()
            self.wfile.write(body)  # fewer bytes than announced = an interrupted transfer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


def test_fetch_url_unpacks_and_checks(synth_root, tmp_path, http_server, capsys):
    base, routes = http_server
    payload = _zip_of(synth_root / "BUSI" / "Dataset_BUSI_with_GT")
    routes["/busi.zip"] = (payload, len(payload))
    dest = tmp_path / "data" / "BUSI"
    assert cli(["fetch", "BUSI", "--url", f"{base}/busi.zip", "--dest", str(dest)]) == 0
    assert (dest / "Dataset_BUSI_with_GT" / "benign").is_dir()
    assert "all       27  benign=9" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["BUSI"]


def test_interrupted_or_bad_downloads_leave_nothing(tmp_path, http_server):
    base, routes = http_server
    payload = _zip_of(Path(__file__).parent)
    routes["/cut.zip"] = (payload[: len(payload) // 2], len(payload))
    routes["/junk.zip"] = (b"<html>not a zip</html>", 22)
    parent = tmp_path / "data"
    with pytest.raises(FetchError, match="interrupted"):
        fetch(parent / "cut", url=f"{base}/cut.zip")
    with pytest.raises(FetchError, match="not a zip"):
        fetch(parent / "junk", url=f"{base}/junk.zip")
    with pytest.raises(FetchError, match="404"):
        fetch(parent / "missing", url=f"{base}/missing.zip")
    assert list(parent.iterdir()) == []


def test_fetch_from_a_local_zip_and_refuses_a_non_empty_destination(synth_root, tmp_path):
    archive = tmp_path / "chest.zip"
    archive.write_bytes(_zip_of(synth_root / "ChestXRay" / "chest_xray"))
    dest = fetch(tmp_path / "chest", zip_path=archive)
    assert (dest / "chest_xray" / "train" / "NORMAL").is_dir()
    with pytest.raises(FetchError, match="not empty"):
        fetch(tmp_path / "chest", zip_path=archive)
