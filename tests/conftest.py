"""Shared fixtures. TensorFlow is imported once per session (it is slow to import)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests are CPU tests, even on a GPU box

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras
