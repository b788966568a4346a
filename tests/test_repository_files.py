"""LICENSE, CITATION.cff and the notebooks' Colab settings."""

import json
from pathlib import Path

import yaml

from s3f_kit import notebooks as s3f_notebooks

REPO = Path(__file__).resolve().parents[1]


def test_license_is_mit_and_citation_cites_the_paper():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    paper = citation["preferred-citation"]
    assert "S³F-Net" in paper["title"] and paper["year"] == 2025
    assert "2509.23442" in paper["identifiers"][0]["value"]


def test_notebooks_open_on_a_colab_gpu_and_install_the_configured_repository():
    url = s3f_notebooks.repository_url()
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        assert notebook["metadata"]["accelerator"] == "GPU"
        assert notebook["metadata"]["colab"]["gpuType"] == "T4"
        text = path.read_text()
        assert f"git+{url}" in text
        assert f"github/{url.removeprefix('https://github.com/')}/blob/main/notebooks" in text


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
