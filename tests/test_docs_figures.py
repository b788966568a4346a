"""Every measured figure lives once, and the docs name the versions the requirements pin.

Issue 36.2: the test counts in README.md, docs/install.md and .ci/run had drifted apart, and
docs/demo.md named a Keras that requirements.txt no longer pins. A figure copied into a second
page is a figure that goes stale there; the second page links to the first instead.

The rules, kept simple so a reader can apply them by eye:

1. **A measured figure** is a number (or a range "0.8–1.6") with a unit of time (ms, s, min,
   minutes, h, hours), of size (KB … TB, KiB … GiB) or a count of tests ("662 tests"). It is
   *copied* when it appears in two files among README.md, docs/*.md and .ci/run, and the lines
   around it (the line before, its own, the line after) in both files also share another
   measured figure or a `backticked` command: two pages telling the same measurement. Equal
   numbers that merely coincide (one page's "13.6 min" for `make demo`, another's for a test
   run) share neither, and are not flagged. docs/paper.md is left out: its numbers are the
   paper's printed facts, not our measurements.
2. **A version** written right after a pinned package's name ("Keras 3.12.4", "TensorFlow 2.18")
   is a claim about the pins: it must be a version (or a leading part of one) that a
   requirements*.txt file pins for that package.

README.md is checked on its own test, which lists every figure it copies from docs/ or .ci/run.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NUMBER = r"\d[\d,]*(?:\.\d+)?"
UNITS = r"ms|s|min|minutes|h|hours|KB|MB|GB|TB|KiB|MiB|GiB|tests"
FIGURE = re.compile(rf"(?<![\w.])({NUMBER}(?:[–-]{NUMBER})?)[ \u00a0]?({UNITS})\b")
COMMAND = re.compile(r"`([^`\n]{3,80})`")
# a pinned package's name as pages write it → its name in requirements*.txt
PACKAGES = {
    "TensorFlow": "tensorflow",
    "Keras": "keras",
    "NumPy": "numpy",
    "pandas": "pandas",
    "scikit-learn": "scikit-learn",
    "SciPy": "scipy",
    "Pillow": "pillow",
    "Matplotlib": "matplotlib",
    "OpenCV": "opencv-python",
    "opencv-python": "opencv-python",
}
VERSION = re.compile(rf"\b({'|'.join(map(re.escape, PACKAGES))}) v?(\d+(?:\.\d+)+)")


def pages(root: Path = REPO) -> list[Path]:
    """The pages whose figures are ours: README.md, .ci/run and docs/*.md but the paper's."""
    docs = sorted(p for p in (root / "docs").glob("*.md") if p.name != "paper.md")
    return [root / "README.md", root / ".ci" / "run", *docs]


def figures(path: Path, root: Path = REPO) -> list[dict]:
    """Every measured figure of a page: its text, file, line, and the figures and commands of
    the lines around it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        around = " ".join(lines[max(0, index - 1) : index + 2])
        nearby = {f"{m.group(1)} {m.group(2)}" for m in FIGURE.finditer(around)}
        commands = set(COMMAND.findall(around))
        for match in FIGURE.finditer(line):
            found.append({"figure": f"{match.group(1)} {match.group(2)}",
                          "file": path.relative_to(root).as_posix(), "line": index + 1,
                          "nearby": nearby, "commands": commands})  # fmt: skip
    return found


def copies(paths: list[Path], root: Path = REPO) -> list[str]:
    """'figure: a.md:3 and b.md:9 (both near …)' for each measured figure told in two files."""
    everything = [f for path in paths for f in figures(path, root)]
    found = []
    for index, first in enumerate(everything):
        for second in everything[index + 1 :]:
            if first["figure"] != second["figure"] or first["file"] == second["file"]:
                continue
            shared = (first["nearby"] & second["nearby"]) - {first["figure"]}
            shared |= first["commands"] & second["commands"]
            if shared:
                found.append(
                    f"{first['figure']}: {first['file']}:{first['line']} and "
                    f"{second['file']}:{second['line']} (both near {', '.join(sorted(shared))})"
                )
    return found


def pins(root: Path = REPO) -> dict[str, set[str]]:
    """{package: every version a requirements*.txt file pins for it}."""
    pinned: dict[str, set[str]] = {}
    for path in sorted(root.glob("requirements*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"([A-Za-z0-9_.-]+)==([\w.]+)", line.strip())
            if match:
                pinned.setdefault(match.group(1).lower(), set()).add(match.group(2))
    return pinned


def unpinned_versions(paths: list[Path], root: Path = REPO) -> list[str]:
    """'docs/x.md:3: Keras 3.8.0 (pinned: 3.12.4, 3.15.1)' for each version no pin matches."""
    pinned = pins(root)
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in VERSION.finditer(line):
                name, version = match.groups()
                versions = pinned.get(PACKAGES[name], set())
                if not any(v == version or v.startswith(version + ".") for v in versions):
                    found.append(f"{path.relative_to(root).as_posix()}:{number}: {name} {version}"
                                 f" (pinned: {', '.join(sorted(versions)) or 'none'})")  # fmt: skip
    return found


def test_docs_and_ci_tell_each_measured_figure_once():
    docs = [p for p in pages() if p.name != "README.md"]
    found = copies(docs)
    assert not found, "a measured figure told twice (keep it beside its command, link to it):\n" + (
        "\n".join(found)
    )


def test_docs_name_only_the_versions_the_requirements_pin():
    found = unpinned_versions([p for p in pages() if p.name != "README.md"])
    assert not found, "a version no requirements*.txt pins:\n" + "\n".join(found)


def test_readme_copies_no_measured_figure_and_names_the_pinned_versions():
    found = [c for c in copies(pages()) if "README.md:" in c]
    found += unpinned_versions([REPO / "README.md"])
    assert not found, "README.md tells a figure another page holds:\n" + "\n".join(found)


def test_the_rules_catch_a_copied_figure_and_a_stale_version_and_pass_coincidences(tmp_path):
    """The checks themselves, on a small tree: a copied measurement and a stale Keras are found;
    the same number about something else, and the paper's numbers, are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / ".ci").mkdir()
    (tmp_path / "requirements.txt").write_text("keras==3.12.4\ntensorflow==2.18.1\n")
    (tmp_path / ".ci" / "run").write_text("# the whole script 22.5 min (662 tests)\n")
    (tmp_path / "README.md").write_text("CI took 22.5 min, 662 tests.\nmake demo: 13.6 min.\n")
    (tmp_path / "docs" / "demo.md").write_text("`make demo` took 9.1 min with Keras 3.8.0.\n")
    (tmp_path / "docs" / "install.md").write_text(
        "Pinned: TensorFlow 2.18, Keras 3.12.4.\n\n\nThe test run took 13.6 min.\n"
    )
    (tmp_path / "docs" / "paper.md").write_text("The paper: 22.5 min, 662 tests, Keras 2.4.\n")
    found = copies(pages(tmp_path), tmp_path)
    assert [c.split(" (")[0] for c in found] == [
        "22.5 min: README.md:1 and .ci/run:1",
        "662 tests: README.md:1 and .ci/run:1",
    ]
    assert unpinned_versions(pages(tmp_path), tmp_path) == [
        "docs/demo.md:1: Keras 3.8.0 (pinned: 3.12.4)"
    ]
