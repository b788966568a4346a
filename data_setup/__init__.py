"""Getting, checking, caching and synthesizing the paper's four datasets."""

from data_setup.datasets import DATASETS, DatasetInfo, dataset_info

__all__ = ["DATASETS", "DatasetInfo", "dataset_info"]
