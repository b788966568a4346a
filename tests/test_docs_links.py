"""Every relative link in README.md and docs/*.md reaches a file of the repository, and every
#anchor a heading of the page it names (GitHub's slugs): pages moved out of the README must not
leave a reader at a dead link."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "results" / "README.md"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m[1]) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


def broken_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        where = (page.parent / path).resolve() if path else page
        if not where.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and where.suffix == ".md" and anchor not in anchors(where):
            broken.append(f"{target} (no such heading)")
    return broken


def test_slugs_follow_githubs_rule():
    assert slug("What is reproducible") == "what-is-reproducible"
    assert slug("`make demo`, measured") == "make-demo-measured"
    assert slug("Three version sets, all tested") == "three-version-sets-all-tested"


def test_every_relative_link_reaches_its_file_and_heading():
    pages = [page for page in PAGES if page.exists()]
    found = {page.relative_to(REPO).as_posix(): broken_links(page) for page in pages}
    assert not {page: links for page, links in found.items() if links}
