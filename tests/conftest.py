"""Shared fixtures. TensorFlow is imported once per session (it is slow to import)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests are CPU tests, even on a GPU box

import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def keras():
    import keras

    keras.utils.set_random_seed(0)
    return keras


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """Kernels started by papermill inherit this: a private cache, quiet TensorFlow, CPU."""
    cache = tmp_path_factory.mktemp("kit-cache")
    old = {k: os.environ.get(k) for k in ("S3F_CACHE_DIR", "TF_CPP_MIN_LOG_LEVEL")}
    os.environ["S3F_CACHE_DIR"] = str(cache)
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    yield cache
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    """The four synthetic datasets in their real layouts (6 images per class), read-only."""
    from data_setup import synth_all

    root = tmp_path_factory.mktemp("synth")
    synth_all(root, count=6, size=48, seed=1)
    return root


@pytest.fixture
def copy_of(synth_root, tmp_path):
    """A private copy of one synthetic dataset, free to damage."""

    def make(dataset):
        target = tmp_path / dataset
        shutil.copytree(synth_root / dataset, target)
        return target

    return make


def pytest_collection_modifyitems(config, items):
    """Files with end-to-end tests first, each file's own order kept: pytest-xdist hands out
    whole files (--dist loadfile), so the longest files start at once and the short unit files
    fill the end instead of one worker finishing a long file alone."""
    heavy = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in heavy)
