"""Which copy of the data the runs read, and whether its counts are the paper's.

A run's metrics.json keeps `data_manifest` (data_setup.manifest): the path-free identity of the
copy and its images per official split and class. Counts equal to the paper's
(data_setup.datasets.PAPER_COUNTS) make a copy "consistent" with the paper's, never
"identical": only a publisher's manifest (`s3f-data check … --manifest FILE`) can say that.
"""

from __future__ import annotations

from data_setup.datasets import DATASETS, PAPER_COUNTS


def consistency(dataset: str, counts: dict) -> str:
    """'consistent', 'inconsistent (test 1,000 vs 1,010: pituitary 300 vs 310)', or why there
    is nothing to compare, for a manifest's {split: {class: files}} against the paper's."""
    paper = PAPER_COUNTS.get(dataset)
    if paper is None:
        return "no paper counts to compare with"
    classes = DATASETS[dataset].class_names
    differences = []
    for split, expected in paper.items():
        got = counts.get(split, {})
        total, expected_total = (
            sum(got.values()),
            (expected if isinstance(expected, int) else sum(expected)),
        )
        classes_off = []
        if not isinstance(expected, int):
            classes_off = [
                f"{name} {got.get(name, 0):,} vs {want:,}"
                for name, want in zip(classes, expected, strict=True)
                if got.get(name, 0) != want
            ]
        if total != expected_total or classes_off:
            detail = f": {', '.join(classes_off)}" if classes_off else ""
            differences.append(f"{split} {total:,} vs {expected_total:,}{detail}")
    return f"inconsistent ({'; '.join(differences)})" if differences else "consistent"


def counts_of(manifest: dict) -> dict | None:
    """A record's counts when they are {split: {class: int}} (metrics.json is read back from
    disk: anything else is no counts, never a traceback)."""
    counts = manifest.get("counts")
    if not isinstance(counts, dict) or not all(
        isinstance(per_class, dict)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in per_class.values())
        for per_class in counts.values()
    ):
        return None
    return counts


def data_lines(runs: list[dict], dataset: str) -> list[str]:
    """The README's lines on the data of `dataset`'s runs: each copy read (its identity and
    runs) and whether its counts are the paper's; runs without a manifest are counted."""
    mine = [m for m in runs if m.get("dataset") == dataset]
    if not mine:
        return []
    copies: dict[str, list[dict]] = {}
    unknown = 0
    for m in mine:
        manifest = m.get("data_manifest")
        if isinstance(manifest, dict) and isinstance(manifest.get("sha256"), str):
            copies.setdefault(manifest["sha256"], []).append(m)
        else:
            unknown += 1
    lines = []
    for sha, members in copies.items():
        manifest = members[0]["data_manifest"]
        counts = counts_of(manifest)
        if members[0].get("demo_data"):
            what = "synthetic demo data"
        elif counts is None:
            what = "its manifest holds no counts"
        else:
            what = f"counts {consistency(dataset, counts)} with the paper's"
        files = sum(map(sum, (c.values() for c in counts.values()))) if counts else 0
        lines.append(f"- Data: copy `{sha[:16]}` ({files:,} files, {len(members)} run(s)): {what}.")
    if len(copies) > 1:
        lines.append(
            f"- The runs read {len(copies)} different copies of the data: compare them with care."
        )
    if unknown:
        lines.append(
            f"- {unknown} run(s) recorded no data manifest: which copy they read is unknown."
        )
    return [*lines, *shortcut_lines(mine), ""]


def shortcut_lines(runs: list[dict]) -> list[str]:
    """One line per copy's shortcut audit (the `shortcuts` the runs recorded): does how a file
    is stored predict its class? A flagged dataset is read beside its claims
    (docs/shortcuts.md)."""
    seen: dict[tuple, int] = {}
    for m in runs:
        found = m.get("shortcuts")
        if not isinstance(found, dict) or not found.get("assessed"):
            continue
        kappa, ci = found.get("kappa"), found.get("kappa_ci") or [None, None]
        if not isinstance(kappa, (int, float)):
            continue
        key = (round(kappa, 3), *(round(c, 3) if isinstance(c, (int, float)) else None
                                 for c in ci[:2]), bool(found.get("flagged")))  # fmt: skip
        seen[key] = seen.get(key, 0) + 1
    return [
        f"- Shortcut audit (file metadata → class, κ on the test split): {kappa:+.2f}"
        + (f" [{low:+.2f}, {high:+.2f}]" if low is not None and high is not None else "")
        + (" — **flagged**: read the claims with docs/shortcuts.md" if flagged else
           " — not flagged") + f" ({count} run(s))."
        for (kappa, low, high, flagged), count in seen.items()
    ]  # fmt: skip
