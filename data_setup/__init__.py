"""Getting, checking, caching and synthesizing the paper's four datasets.

    from data_setup import load_dataset
    data = load_dataset("BUSI", "~/data/BUSI", protocol="holdout")
    train = data.tf_dataset("train", batch_size=16, shuffle=True)

Importing this package is light (no TensorFlow); `tf_dataset` imports it on first use.
"""

from data_setup.datasets import DATASETS, DatasetInfo, dataset_info
from data_setup.layouts import DatasetError, discover, find_root
from data_setup.loading import Dataset, load_dataset
from data_setup.synth import synth_all, synth_dataset

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "dataset_info",
    "discover",
    "find_root",
    "load_dataset",
    "synth_all",
    "synth_dataset",
]
