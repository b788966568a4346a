"""Packaging: what `pip install` declares and installs, and kit models moving between Keras
versions (a model saved on Colab's newer Keras must load under the pinned one, and back)."""

import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# The other version set's interpreter (CI: `make setup-latest` builds .venv-latest; `make test`
# passes it here, and `make test-latest` passes the pinned one back).
OTHER_PYTHON = Path(os.environ.get("S3F_OTHER_PYTHON") or REPO / ".venv-latest" / "bin" / "python")


def _canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _pins(filename: str) -> dict:
    pins = {}
    for line in (REPO / filename).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, separator, version = line.partition("==")
            assert separator, f"{filename}: {line!r} is not an exact pin"
            pins[_canonical(name)] = version
    return pins


@pytest.mark.parametrize(
    "pins_file", ["requirements.txt", "requirements-latest.txt", "requirements-py313.txt"]
)
def test_dependencies_have_lower_bounds_that_the_pinned_sets_satisfy(pins_file):
    from packaging.requirements import Requirement

    declared = {_canonical(r.name): r for r in map(Requirement, _project()["dependencies"])}
    for name in ("tensorflow", "keras", "opencv-python"):  # what Colab ships: kept, not replaced
        assert declared[name].specifier, f"{name} needs a lower bound in pyproject.toml"
    pins = _pins(pins_file)
    for name, requirement in declared.items():
        assert name in pins, f"{pins_file} does not pin {name}"
        assert requirement.specifier.contains(pins[name]), f"{pins_file}: {name}=={pins[name]}"
    # one cv2 distribution per environment: two would overwrite each other's files
    assert [name for name in pins if name.startswith("opencv")] == ["opencv-python"]


@pytest.mark.parametrize("script", ["s3f-sweep", "s3f-data"])
def test_console_scripts_name_working_entry_points(script, capsys):
    import importlib

    module_name, _, function = _project()["scripts"][script].partition(":")
    main = getattr(importlib.import_module(module_name), function)
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def _save_tiny_model(path):
    import s3f_common
    from s3f_kit import recipe as s3f_recipe

    model = s3f_common.build_model(
        "s3f",
        (16, 16, 1),
        3,
        "bilinear",
        2,
        bn_momentum=0.9,
        channel_mixing="depthwise",
        name="tiny_s3f",
    )
    images = np.random.default_rng(0).random((4, 16, 16, 1)).astype("float32")
    s3f_recipe.compile_model(model)
    model.fit(images, np.array([0, 1, 2, 0]), epochs=1, verbose=0)  # BN statistics move
    model.save(path)
    return images, model.predict(images, verbose=0)


def _pretend_newer_keras(path, module="keras.initializers"):
    """Rewrite a .keras file the way a newer Keras writes it: an initializer config key this
    Keras does not know, and a newer version in the metadata."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}

    def add_key(node):
        if isinstance(node, dict):
            if node.get("module") == module and "config" in node:
                node["config"]["input_axes"] = None
            for value in node.values():
                add_key(value)
        elif isinstance(node, list):
            for value in node:
                add_key(value)

    config = json.loads(members["config.json"])
    add_key(config)
    members["config.json"] = json.dumps(config).encode()
    members["metadata.json"] = json.dumps({"keras_version": "99.0.0"}).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_kit_model_from_a_newer_keras_is_rebuilt_with_its_weights(tmp_path, keras):
    import s3f_common

    path = tmp_path / "newer.keras"
    images, expected = _save_tiny_model(path)
    _pretend_newer_keras(path)
    with pytest.raises(Exception, match="input_axes"):  # what plain Keras does with the file
        keras.saving.load_model(path, custom_objects=s3f_common.CUSTOM_OBJECTS)
    with pytest.warns(UserWarning, match="saved by Keras 99.0.0"):
        model = s3f_common.load_model(path)
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert model.name == "tiny_s3f"


def test_other_model_from_a_newer_keras_still_fails_with_the_file_name(tmp_path, keras):
    import s3f_common

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "other.keras"
    model.save(path)
    _pretend_newer_keras(path)
    with pytest.raises(ValueError, match="other.keras: not a loadable"):
        s3f_common.load_model(path)


SAVE_IN_OTHER_KERAS = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from tests.test_packaging import _save_tiny_model

    images, expected = _save_tiny_model(sys.argv[1])
    np.save(sys.argv[1] + ".images.npy", images)
    np.save(sys.argv[1] + ".expected.npy", expected)
    print(keras.__version__)
    """
)


@pytest.mark.skipif(not OTHER_PYTHON.is_file(), reason=f"no other Keras set at {OTHER_PYTHON}")
def test_kit_model_saved_under_the_other_keras_version_loads_here(tmp_path, keras):
    import s3f_common

    path = tmp_path / "other-keras.keras"
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    saved = subprocess.run(
        [str(OTHER_PYTHON), "-c", SAVE_IN_OTHER_KERAS, str(path), str(REPO)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert saved.returncode == 0, saved.stderr[-2000:]
    other_version = saved.stdout.split()[-1]
    if other_version == keras.__version__:
        pytest.skip(f"{OTHER_PYTHON} has this same Keras {other_version}")
    model = s3f_common.load_model(path)
    np.testing.assert_allclose(
        model.predict(np.load(f"{path}.images.npy"), verbose=0),
        np.load(f"{path}.expected.npy"),
        rtol=1e-4,
        atol=1e-5,
    )
    print(f"saved by Keras {other_version}, loaded by {keras.__version__}")


def test_every_kit_module_is_installed_and_every_command_answers_help():
    """`pip install .` ships every root module and package (a new one missing from py-modules or
    packages would import in a checkout and fail in an installed kit), and each console command
    names a real main."""
    import importlib

    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["py-modules"])
    on_disk = {path.stem for path in REPO.glob("s3f_*.py")}
    missing, stale = on_disk - listed, listed - on_disk
    assert not missing and not stale, f"pyproject py-modules: missing {missing}, stale {stale}"
    packages = {"data_setup"} | {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in REPO.glob("s3f_kit/**/__init__.py")
    }
    declared = set(config["tool"]["setuptools"]["packages"])
    missing, stale = packages - declared, declared - packages
    assert not missing and not stale, f"pyproject packages: missing {missing}, stale {stale}"
    for command, target in config["project"]["scripts"].items():
        module, function = target.split(":")
        if module.startswith("s3f_"):
            assert callable(getattr(importlib.import_module(module), function)), command
    assert {"s3f-sweep", "s3f-data", "s3f-predict", "s3f-export", "s3f-results"} <= set(
        config["project"]["scripts"]
    )


def test_python313_tier_is_wired_into_ci_and_its_interpreter_script_refuses_in_one_line():
    import re
    import sys

    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(_project()["requires-python"]).contains("3.13")
    ci = (REPO / ".ci" / "run").read_text()
    assert "make setup-py313" in ci and "make test-py313" in ci
    makefile = (REPO / "Makefile").read_text()
    tests = re.search(r"^PY313_TESTS \?=((?:.*\\\n)*.*)$", makefile, flags=re.M)[1]
    for name in tests.replace("\\", " ").split():
        assert (REPO / name).is_file(), f"Makefile PY313_TESTS: {name} does not exist"
    script = REPO / ".ci" / "python313"
    assert "://" not in script.read_text()  # the mirror comes from the machine's apt sources
    if sys.version_info[:2] == (3, 13):
        pytest.skip("this interpreter is a 3.13: nothing to refuse")
    out = subprocess.run(
        ["bash", str(script)], env={**os.environ, "S3F_PYTHON313": sys.executable},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"python313: S3F_PYTHON313={sys.executable} is not a Python 3.13 with "
        "ssl sqlite3 lzma bz2 zlib ctypes"
    ]
