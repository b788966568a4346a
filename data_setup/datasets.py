"""What each dataset is: one record (DatasetInfo) per dataset holds every fact of it.

Classes, channels, input size, source, layout; the paper's counts, schedule and printed results;
the demo's settings and the synthetic stand-in's recipe. Every table that lists the datasets (the
experiment registry, the demo settings, synth, the claims, the results) is derived from these
records, so a fifth dataset is one record: `register_dataset` (docs/extending.md).

Facts only (no I/O), so the experiment registry, the CLI and the notebooks can import this fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

# The layout kinds the loaders read (DatasetInfo.layout_kind; data_setup.layouts).
LAYOUT_KINDS = ("split_folders", "class_folders", "onehot_csv", "label_csv")
# onehot_csv: per official split, the CSV of one-hot labels and the folder of its images.
ONEHOT_CSV_FILES = {
    "train": ("GroundTruth.csv", "images"),
    "test": ("Test_GroundTruth.csv", "Test_images"),
}
# The paper's training schedule where a record states none (the BRISC2025/HAM10000 schedule with
# concatenation and SpectraNet-1): keys of s3f_kit.experiments.Recipe.
DEFAULT_RECIPE = {"epochs": 200, "f1_patience": 40, "lr_patience": 20, "fusion": "concat",
                  "spectranet": 1}  # fmt: skip


@dataclass(frozen=True)
class SynthRecipe:
    """How data_setup.synth draws a dataset's stand-in in its layout (kit, not the paper)."""

    aspect: float = 1.0  # height/width of the real images, so resizing behaves as on them
    base: str = ""  # the folder the layout sits in, under the folder synth is given ("": none)
    suffix: str = ".jpg"  # image file suffix
    # Full-size rehearsal (synth_full_size): the real files' width range (px) and aspect range.
    real_width: tuple[int, int] = (512, 512)
    real_aspect: tuple[float, float] = (1.0, 1.0)
    # "shapes" (synth_image, enlarged) or "chest_film" (data_setup.xray: class 1 diseased)
    full_size_drawing: str = "shapes"
    # onehot_csv: image ids from a running number, as the real CSV's image column
    id_format: str = "{:07d}"
    first_id: int = 0


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    title: str
    class_names: tuple[str, ...]  # index order used for labels everywhere
    channels: int  # 1 = grayscale, 3 = RGB
    image_size: tuple[int, int]  # the paper's (H, W)
    layout: str  # what the user has after unzipping, shown in errors
    source: str  # where to download it
    # The data's terms of use, which weights trained on it carry too (s3f_kit.reports.model_card)
    licence: str
    paper_split: str
    # How the files are laid out, read by every module (layouts, loading, check, audit):
    #   "split_folders": <root>/{train,test}/<class>/* (+ extra_train folders, pooled into train)
    #   "class_folders": <root>/<class>/*, split into train/test (test_fraction, split_seed)
    #   "onehot_csv":    GroundTruth.csv + images/, Test_GroundTruth.csv + Test_images/
    #   "label_csv":     a CSV of file,label[,split] (custom data)
    layout_kind: str = "split_folders"
    extra_train: tuple[str, ...] = ()
    test_fraction: float = 0.2
    split_seed: int = 42
    ignore_stem: str = ""  # file stems containing this are not images to classify (BUSI masks)
    csv_name: str = ""  # label_csv: the CSV file, relative to the root
    # Which images belong to one patient or lesion (data_setup.groups): "kermany_patient"
    # (from file names), "ham_lesion" (from a lesion CSV beside the data), "csv_group" (a custom
    # CSV's group column) or "" (none known).
    grouping: str = ""
    # The declared analysis plan (docs/analysis-plan.md), fixed before the real runs: the
    # metrics the headline tables show first, with their intervals; the first is the metric of
    # the dataset's primary claim (S³F-Net beats its spatial baseline). Keys of
    # s3f_stats.METRIC_RANGES.
    primary_metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    # The protocol whose runs decide the primary claim: "holdout" (the official or the kit's
    # split, checkpoints chosen on a split of train) or "cross-validation" (repeated grouped
    # K-fold: the sweep's --folds K --seeds R).
    primary_protocol: str = "holdout"
    # The images per official split (the folders the user unzips: Chest X-Ray's val/ apart from
    # train/; BUSI's one folder is "all") of the copies the paper used (docs/paper.md): per class
    # in class order, or only the total where that is all the paper states (BRISC2025's training
    # split). A run's data manifest is compared with these (s3f_kit.reports.data_identity).
    paper_counts: dict = field(default_factory=dict, hash=False)
    # The paper's test images per class (§6.1) where its test set is not an official split of
    # paper_counts (BUSI: its 80/20 split of "all"); otherwise test_support reads paper_counts.
    paper_test_support: tuple[int, ...] = ()
    # The paper's training schedule (keys of s3f_kit.experiments.Recipe): epochs, patience, its
    # best fusion and SpectraNet variant for S³F-Net on this dataset.
    paper_recipe: dict = field(default_factory=lambda: dict(DEFAULT_RECIPE), hash=False)
    # architecture → (params at the paper's input size, docs/paper.md §6.1 row: acc %, wF1, mF1,
    # κ, MCC, AUC, loss, epochs run, best epoch[, PNEUMONIA F1]); {} for a dataset not in it
    paper_results: dict = field(default_factory=dict, hash=False)
    # The XAI notebook's branch shares (§6.2): (fusion, spectranet, l2_spatial %,
    # balanced_spatial %, {class: balanced_spatial %}); () for a dataset not in it
    paper_contributions: tuple = field(default=(), hash=False)
    # The demo (synthetic data, kit): image size [H, W] in the paper's aspect ratio, and training
    # images per class — 86–224 per dataset, 6–14 steps per epoch at batch 16 (two-class Chest
    # X-Ray gets twice as many per class), so the paper's patience leaves enough steps to learn.
    demo_image_size: tuple[int, int] = (32, 32)
    demo_count: int = 24
    synth: SynthRecipe = SynthRecipe()

    @property
    def test_support(self) -> tuple[int, ...]:
        """The paper's test images per class, in class order (() where unknown)."""
        return self.paper_test_support or tuple(self.paper_counts.get("test", ()))


_BUSI_SOURCE = "https://www.kaggle.com/datasets/aryashah2k/breast-ultrasound-images-dataset"

DATASETS: dict[str, DatasetInfo] = {
    info.id: info
    for info in (
        DatasetInfo(
            id="BRISC2025",
            title="BRISC2025 brain MRI (tumour classification)",
            class_names=("glioma", "meningioma", "no_tumor", "pituitary"),
            channels=1,
            image_size=(256, 256),
            layout="classification_task/{train,test}/<class>/*.jpg",
            source="https://www.kaggle.com/datasets/briscdataset/brisc2025",
            licence="CC BY 4.0",
            paper_split="official train 5,000 / test 1,010",
            paper_counts={"train": 5000, "test": (254, 306, 140, 310)},
            paper_recipe={"epochs": 200, "f1_patience": 40, "lr_patience": 20,
                          "fusion": "bilinear", "spectranet": 1},
            paper_results={
                "spatial": (1_309_284, (98.22, 0.9822, 0.9833, 0.9756, 0.9757, (0.9989, 0.9987), 0.0716, 109, 69)),
                "spectranet": (2_128_184, (94.46, 0.9442, 0.9478, 0.9243, 0.9244, (0.9923, 0.9912), 0.1911, 129, 89)),
                "s3f": (3_443_592, (98.81, 0.9881, 0.9884, 0.9838, 0.9838, (0.9985, 0.9982), 0.1034, 136, 96)),
            },
            paper_contributions=(
                "concat", 1, 81.63, 29.52,
                {"glioma": 31.35, "meningioma": 32.11, "no_tumor": 26.35, "pituitary": 26.91},
            ),
            demo_image_size=(32, 32),
            demo_count=24,
            # source images 512×512
            synth=SynthRecipe(aspect=1.0, base="classification_task", suffix=".jpg",
                              real_width=(512, 512), real_aspect=(1.0, 1.0)),
        ),
        DatasetInfo(
            id="ChestXRay",
            title="Chest X-Ray pneumonia (Kermany et al.)",
            class_names=("NORMAL", "PNEUMONIA"),
            channels=1,
            image_size=(384, 512),
            layout="chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg",
            source="https://www.kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia",
            # Kermany, Zhang, Goldbaum (2018), Mendeley Data V2, doi:10.17632/rscbjbr9sj.2
            licence="CC BY 4.0",
            paper_split="train/ (5,216) + val/ (16) = 5,232 / test 624",
            extra_train=("val",),  # the paper trained on Kaggle's train/ and its 16-image val/
            grouping="kermany_patient",
            # its test set differs in distribution from train: ranking and both error kinds
            primary_metrics=("roc_auc", "sensitivity", "specificity"),
            paper_counts={"train": (1341, 3875), "val": (8, 8), "test": (234, 390)},
            paper_recipe={"epochs": 100, "f1_patience": 20, "lr_patience": 10,
                          "fusion": "concat", "spectranet": 1},
            paper_results={
                "spatial": (1_307_745, (86.54, 0.8627, 0.8513, 0.7037, 0.7094, (0.9343,), 0.3324, 27, 7, 0.8971)),
                "spectranet": (6_330_665, (91.03, 0.9085, 0.9009, 0.8025, 0.8090, (0.9659,), 0.2375, 30, 10, 0.9314)),
                "s3f": (7_638_409, (93.91, 0.9390, 0.9348, 0.8696, 0.8697, (0.9821,), 0.1743, 43, 23, 0.9515)),
            },
            paper_contributions=(
                "concat", 1, 83.62, 35.42, {"NORMAL": 50.52, "PNEUMONIA": 26.36}
            ),
            demo_image_size=(24, 32),
            demo_count=48,
            # the Kermany chest films are 1,000–2,000 px wide in varied aspect
            synth=SynthRecipe(aspect=0.75, base="chest_xray", suffix=".jpeg",
                              real_width=(1000, 2000), real_aspect=(0.65, 0.95),
                              full_size_drawing="chest_film"),
        ),
        DatasetInfo(
            id="BUSI",
            title="BUSI breast ultrasound",
            class_names=("benign", "malignant", "normal"),
            channels=1,
            image_size=(256, 256),
            layout="Dataset_BUSI_with_GT/<class>/<name>.png (+ <name>_mask*.png, ignored)",
            source=_BUSI_SOURCE,
            # no licence the kit could confirm (Al-Dhabyani et al., Data in Brief 28, 2020)
            licence=f"see {_BUSI_SOURCE}",
            paper_split=(
                "780 images, stratified 80/20 with seed 42 → 624 / 156 — of the sorted file "
                "list; the paper split an os.listdir order on Google Drive that cannot be "
                "recovered, so its exact test set cannot be rebuilt (split.csv records ours)"
            ),
            layout_kind="class_folders",
            ignore_stem="_mask",
            # the paper's split cannot be rebuilt, and 156 test images are few: every image
            # is tested once per repetition
            primary_protocol="cross-validation",
            paper_counts={"all": (437, 210, 133)},
            paper_test_support=(87, 42, 27),
            paper_recipe={"epochs": 200, "f1_patience": 60, "lr_patience": 40,
                          "fusion": "concat", "spectranet": 2},
            paper_results={
                "spatial": (1_308_771, (84.62, 0.8479, 0.8205, 0.7426, 0.7437, (0.9568, 0.9547), 0.5040, 200, 167)),
                "spectranet": (137_392_083, (82.05, 0.8175, 0.7996, 0.6874, 0.6905, (0.9337, 0.9294), 0.4861, 168, 108)),
                "s3f": (138_700_851, (87.82, 0.8773, 0.8532, 0.7904, 0.7925, (0.9643, 0.9646), 0.3729, 119, 59)),
            },
            paper_contributions=(
                "concat", 2, 85.77, 36.42, {"benign": 37.39, "malignant": 36.18, "normal": 33.67}
            ),
            demo_image_size=(32, 32),
            demo_count=24,
            # scans about 500–700 px wide
            synth=SynthRecipe(aspect=0.8, base="Dataset_BUSI_with_GT", suffix=".png",
                              real_width=(500, 700), real_aspect=(0.7, 0.9)),
        ),
        DatasetInfo(
            id="HAM10000",
            title="HAM10000 dermoscopy (ISIC 2018 task 3)",
            class_names=("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"),
            channels=3,
            image_size=(225, 300),
            layout="GroundTruth.csv + images/<id>.jpg, Test_GroundTruth.csv + Test_images/<id>.jpg",
            source="https://challenge.isic-archive.com/data/#2018 (task 3 training + test)",
            licence="CC BY-NC 4.0",  # non-commercial: so are weights trained on it
            paper_split="official train 10,015 / test 1,512",
            layout_kind="onehot_csv",
            grouping="ham_lesion",
            # imbalanced (NV is two thirds): ISIC 2018's challenge metric, then macro-F1
            primary_metrics=("balanced_accuracy", "macro_f1"),
            paper_counts={
                "train": (1113, 6705, 514, 327, 1099, 115, 142),
                "test": (171, 909, 93, 43, 217, 44, 35),
            },
            paper_recipe={"epochs": 200, "f1_patience": 40, "lr_patience": 20,
                          "fusion": "bilinear", "spectranet": 1},
            paper_results={
                "spatial": (1_311_399, (65.54, 0.6780, 0.5209, 0.4824, 0.4912, (0.9095, 0.8930), 0.9566, 138, 98)),
                "spectranet": (6_537_863, (63.10, 0.6408, 0.4378, 0.4059, 0.4074, (0.8232, 0.8324), 1.1092, 121, 81)),
                "s3f": (7_859_979, (69.31, 0.7047, 0.5149, 0.5153, 0.5185, (0.8811, 0.8835), 1.1984, 169, 129)),
            },
            paper_contributions=(
                "concat", 1, 83.86, 35.84,
                {"MEL": 32.84, "NV": 39.69, "BCC": 27.22, "AKIEC": 28.00, "BKL": 27.08, "DF": 34.10,
                 "VASC": 39.59},
            ),
            demo_image_size=(24, 32),
            demo_count=32,
            # source images 450×600; the ISIC image ids
            synth=SynthRecipe(aspect=0.75, suffix=".jpg", real_width=(600, 600),
                              real_aspect=(0.75, 0.75), id_format="ISIC_{:07d}", first_id=24306),
        ),
    )
}  # fmt: skip


class RecordView(Mapping):
    """A read-only table derived from the records, rebuilt when DATASETS changes (a dataset
    registered, a record replaced), so no table that lists datasets can fall behind them."""

    def __init__(self, build: Callable[[], dict]):
        self._build, self._seen, self._table = build, (), {}

    def _current(self) -> dict:
        seen = tuple(DATASETS.items())
        if len(seen) != len(self._seen) or any(
            a[0] != b[0] or a[1] is not b[1] for a, b in zip(seen, self._seen, strict=True)
        ):
            self._table, self._seen = self._build(), seen
        return self._table

    def __getitem__(self, key):
        return self._current()[key]

    def __iter__(self):
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def __repr__(self) -> str:
        return repr(self._current())


# Per dataset, its record's paper_counts (the datasets that have them).
PAPER_COUNTS: Mapping[str, dict[str, tuple[int, ...] | int]] = RecordView(
    lambda: {name: info.paper_counts for name, info in DATASETS.items() if info.paper_counts}
)


def check_record(info: DatasetInfo) -> None:
    """One sentence for a record the kit cannot use (a ValueError), before it is registered."""
    if not info.id or info.id in (CUSTOM, *DATASETS):
        raise ValueError(f"dataset record {info.id!r}: expected a new, non-empty id")
    if info.layout_kind not in LAYOUT_KINDS:
        raise ValueError(
            f"dataset {info.id}: unknown layout kind {info.layout_kind!r}; expected one of "
            f"{', '.join(LAYOUT_KINDS)}"
        )
    if len(info.class_names) < 2 or info.channels not in (1, 3):
        raise ValueError(
            f"dataset {info.id}: expected at least two class names and 1 or 3 channels"
        )
    if set(info.paper_recipe) != set(DEFAULT_RECIPE):
        raise ValueError(
            f"dataset {info.id}: paper_recipe needs exactly the keys {', '.join(DEFAULT_RECIPE)}"
        )


@contextlib.contextmanager
def register_dataset(info: DatasetInfo) -> Iterator[DatasetInfo]:
    """Add one dataset to the kit for the duration of the block: every table derived from the
    records (experiments, demo settings, synth, claims, results) then lists it after the
    paper's four. For good, add the record to DATASETS above instead."""
    check_record(info)
    DATASETS[info.id] = info
    try:
        yield info
    finally:
        DATASETS.pop(info.id, None)


CUSTOM = "Custom"  # your own data: class names come from the folders or the CSV
CUSTOM_LICENCE = "the user's own: state it"  # your own data's terms are yours to state

# The largest img_size side accepted: above the paper's sizes (at most 384×512) and the source
# images of all four datasets (Chest X-Ray's largest are under 3,000 px); a larger request is a
# typo that would make a cache of many gigabytes per hundred images.
MAX_IMAGE_SIDE = 4096


def dataset_info(dataset_id) -> DatasetInfo:
    if isinstance(dataset_id, DatasetInfo):
        return dataset_id
    try:
        return DATASETS[dataset_id]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset_id!r}; expected one of {', '.join(DATASETS)} or {CUSTOM}"
        ) from None
