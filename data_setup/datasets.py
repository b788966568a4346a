"""What each of the paper's four datasets is: classes, channels, input size, where it comes from.

Facts only (no I/O), so the experiment registry, the CLI and the notebooks can import this fast.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        ),
    )
}


# The images per official split (the folders the user unzips: Chest X-Ray's val/ apart from
# train/; BUSI's one folder is "all") of the copies the paper used (docs/paper.md): per class in
# class order, or only the total where that is all the paper states (BRISC2025's training split).
# A run's data manifest is compared with these (s3f_kit.reports.data_identity).
PAPER_COUNTS: dict[str, dict[str, tuple[int, ...] | int]] = {
    "BRISC2025": {"train": 5000, "test": (254, 306, 140, 310)},
    "ChestXRay": {"train": (1341, 3875), "val": (8, 8), "test": (234, 390)},
    "BUSI": {"all": (437, 210, 133)},
    "HAM10000": {
        "train": (1113, 6705, 514, 327, 1099, 115, 142),
        "test": (171, 909, 93, 43, 217, 44, 35),
    },
}

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
