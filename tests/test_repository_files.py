"""LICENSE, CITATION.cff and the notebooks' Colab settings."""

import json
from pathlib import Path

import yaml

from s3f_kit import experiments as s3f_experiments
from s3f_kit.run import notebooks as s3f_notebooks

REPO = Path(__file__).resolve().parents[1]


def test_license_is_mit_and_citation_cites_the_paper():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    paper = citation["preferred-citation"]
    assert "S³F-Net" in paper["title"] and paper["year"] == 2025
    assert "2509.23442" in paper["identifiers"][0]["value"]


def test_notebooks_open_on_a_colab_gpu_and_install_the_configured_repository():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        assert notebook["metadata"]["accelerator"] == "GPU"
        assert notebook["metadata"]["colab"]["gpuType"] == "T4"
        text = path.read_text()
        assert f"git+https://github.com/{s3f_experiments.KIT_REPOSITORY}" in text
        assert f"github/{s3f_experiments.KIT_REPOSITORY}/blob/main/notebooks" in text


def test_repository_option_rewrites_the_one_setting(tmp_path, monkeypatch):
    copy = tmp_path / "s3f_experiments.py"
    copy.write_text(Path(s3f_experiments.__file__).read_text())
    monkeypatch.setattr(s3f_experiments, "__file__", str(copy))
    monkeypatch.setattr(s3f_experiments, "KIT_REPOSITORY", s3f_experiments.KIT_REPOSITORY)
    s3f_notebooks.set_repository("my-lab/s3f-fork")
    assert 'KIT_REPOSITORY = "my-lab/s3f-fork"' in copy.read_text()
    assert "git+https://github.com/my-lab/s3f-fork" in s3f_notebooks.setup_cell()
    assert "github/my-lab/s3f-fork/blob/main" in s3f_notebooks.colab_url("Spatial_BUSI")


def test_citations_point_at_the_kits_own_reference_of_the_paper():
    import subprocess

    reference = (REPO / "docs" / "paper.md").read_text()
    for number in ("138,700,851", "0.8782", "85.77 / 14.23", "119 / 59"):  # §1.5, §6.1, §6.2
        assert number in reference
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    spec = "SPEC" + " §"  # split so this file does not match itself
    for name in tracked:
        path = REPO / name
        if path.suffix in (".py", ".md") and path.is_file():
            assert spec not in path.read_text(), f"{name} cites a document not in the repository"
    assert "docs/paper.md" in (REPO / "README.md").read_text()
    assert "docs/paper.md §5" in (REPO / "results" / "README.md").read_text()


def _run_setup_cell_as_colab(tmp_path, monkeypatch, files=()):
    """The setup cell in a fake Colab where /content is tmp_path: what pip is asked to install
    and whether Drive was mounted."""
    import importlib.util
    import subprocess
    import sys
    import types

    content = tmp_path / "content"
    for name in files:
        (content / name).parent.mkdir(parents=True, exist_ok=True)
        (content / name).write_bytes(b"PK")
    mounted, installed = [], []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "s3f_common" else real_find_spec(name, *a),
    )
    monkeypatch.setattr(subprocess, "run", lambda command, check: installed.append(command[-1]))
    code = s3f_notebooks.setup_cell().replace("/content/", f"{content}/")
    exec(compile(code, "setup-cell", "exec"), {})
    return installed, mounted


def test_colab_installs_the_kit_from_an_uploaded_zip_then_drive_then_github(tmp_path, monkeypatch):
    content = tmp_path / "content"
    installed, mounted = _run_setup_cell_as_colab(tmp_path, monkeypatch, ["s3f-kit.zip"])
    assert installed == [str(content / "s3f-kit.zip")] and mounted == []
    drive_zip = "drive/MyDrive/s3f-kit.zip"
    installed, mounted = _run_setup_cell_as_colab(tmp_path / "b", monkeypatch, [drive_zip])
    assert installed == [str(tmp_path / "b" / "content" / drive_zip)]
    assert mounted == [str(tmp_path / "b" / "content" / "drive")]
    installed, _ = _run_setup_cell_as_colab(tmp_path / "c", monkeypatch)
    assert installed == [f"git+https://github.com/{s3f_experiments.KIT_REPOSITORY}"]
