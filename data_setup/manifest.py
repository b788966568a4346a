"""The data manifest: what copy of a dataset a run read, independent of where it was unzipped.

Each listed file is (content SHA-256, official split, class name); the manifest's identity is the
SHA-256 of those triples, sorted, one per line, with no path, size or time in it: the same images
copied, moved or unzipped elsewhere give the same identity, one changed pixel another. Official
splits are the folders the user has (Chest X-Ray's val/ counts apart from train/, though the paper
trains on both). The per-file hashes are cached beside the decode cache (data_setup.cache).

A publisher's manifest (`s3f-data check … --manifest FILE`) is a CSV with a header and the
columns path,sha256 (path relative to the dataset folder, '/' between folders), optionally split
and label (a class name); it is untrusted: read_manifest bounds its size, rows and cells and
refuses what is not plain text.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from data_setup.cache import file_hashes
from data_setup.files import FORMULA_STARTS
from data_setup.layouts import Listing

MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 64 << 20  # HAM10000's 11,527 rows take ~1 MB; a million rows fit
MAX_MANIFEST_ROWS = 1_000_000
MAX_CELL_CHARS = 4096  # a path longer than any file system allows
MAX_PROBLEMS = 20  # sentences printed for a bad manifest; the rest are counted
REQUIRED_COLUMNS = ("path", "sha256")
OPTIONAL_COLUMNS = ("split", "label")


class ManifestError(ValueError):
    """A publisher's manifest that cannot be used: one sentence per problem (file and line)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the dataset folder, '/' between folders
    sha256: str
    split: str  # the official folder: train, val, test or all
    label: str  # the class name


def official_split(info, split: str, relative: str) -> str:
    """The folder a listed file came from: a layout's extra training folders (Chest X-Ray's
    val/) are listed under train but are a split of their own to the publisher."""
    first = PurePosixPath(relative).parts[0]
    return first if split == "train" and first in info.extra_train else split


def manifest_entries(info, listing: Listing, cache_dir=None, workers: int = 4):
    """(entries, unread): an Entry per listed file and the paths that could not be read."""
    entries, unread = [], []
    for split, items in listing.splits.items():
        hashes = file_hashes(listing, info, split, cache_dir, workers)
        for (path, label), sha in zip(items, hashes, strict=True):
            relative = path.relative_to(listing.root).as_posix()
            if sha is None:
                unread.append(relative)
                continue
            split_name = official_split(info, split, relative)
            entries.append(Entry(relative, sha, split_name, info.class_names[label]))
    return entries, unread


def identity(entries) -> str:
    """SHA-256 of the sorted (content SHA-256, split, label) lines: no path, size or time."""
    lines = sorted(f"{e.sha256}\t{e.split}\t{e.label}\n" for e in entries)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def manifest_record(info, entries, unread=()) -> dict:
    """What metrics.json keeps as `data_manifest`: the identity, counts per split and class."""
    counts: dict[str, dict[str, int]] = {}
    for entry in entries:
        per_class = counts.setdefault(entry.split, dict.fromkeys(info.class_names, 0))
        per_class[entry.label] += 1
    return {
        "version": MANIFEST_VERSION,
        "sha256": identity(entries),
        "files": len(entries),
        "counts": counts,
        "unread": sorted(unread),
    }


def data_manifest(info, listing: Listing, cache_dir=None, workers: int = 4) -> dict:
    return manifest_record(info, *manifest_entries(info, listing, cache_dir, workers))


def duplicate_groups(entries) -> list[list[Entry]]:
    """Groups of byte-identical files (two or more), each sorted by path, groups by first path."""
    by_hash = defaultdict(list)
    for entry in entries:
        by_hash[entry.sha256].append(entry)
    groups = [sorted(g, key=lambda e: e.path) for g in by_hash.values() if len(g) > 1]
    return sorted(groups, key=lambda g: g[0].path)


def cross_split(groups) -> list[list[Entry]]:
    return [g for g in groups if len({e.split for e in g}) > 1]


def copies_of_training(info, entries) -> dict[str, tuple[int, int]]:
    """{folder: (files that are byte copies of training files, files)} for each extra training
    folder the data has (Chest X-Ray's val/)."""
    training = {e.sha256 for e in entries if e.split == "train"}
    found = {}
    for folder in info.extra_train:
        files = [e for e in entries if e.split == folder]
        if files:
            found[folder] = (sum(e.sha256 in training for e in files), len(files))
    return found


# --------------------------------------------------------------------------- a publisher's
def _cell_problem(value: str, column: str) -> str | None:
    if len(value) > MAX_CELL_CHARS:
        return f"its {column} is longer than {MAX_CELL_CHARS:,} characters"
    if value[:1] in FORMULA_STARTS:
        return f"its {column} starts with {value[:1]!r}, as a spreadsheet formula does"
    if any(ord(c) < 32 for c in value):
        return f"its {column} holds a control character"
    return None


def read_manifest(path, info=None) -> list[Entry]:
    """A publisher's manifest as entries (split and label '' where it has no such column).

    Refused, with one sentence per problem naming the file and line (ManifestError): a file
    over MAX_MANIFEST_BYTES or MAX_MANIFEST_ROWS, not UTF-8, without the path and sha256
    columns, a cell that is not a SHA-256, a formula, a control character or too long, a path
    listed twice, or (given `info`) a split or label the dataset does not have."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError(
                [f"{path}: {size:,} bytes, more than the {MAX_MANIFEST_BYTES:,} a manifest may be"]
            )
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as error:
        raise ManifestError([f"{path}: cannot be read ({error.strerror or error})"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ManifestError([f"{path}: not UTF-8 text (byte {error.start:,})"]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as error:
        raise ManifestError([f"{path}: line 1 is not CSV ({error})"]) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            [
                f"{path}: line 1 has no {' or '.join(missing)} column; expected a header "
                "path,sha256[,split][,label]"
            ]  # fmt: skip
        )
    columns = {c: header.index(c) for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in header}
    splits = {"train", "test", "all", *(info.extra_train if info else ())}
    entries, problems, seen = [], [], {}
    try:
        for row in reader:
            line = reader.line_num
            if line > MAX_MANIFEST_ROWS + 1:  # blank rows count too: each costs a step
                problems.append(f"{path}: more than {MAX_MANIFEST_ROWS:,} rows")
                break
            if not any(cell.strip() for cell in row):
                continue
            cells = {c: (row[i].strip() if i < len(row) else "") for c, i in columns.items()}
            why = next(filter(None, (_cell_problem(v, c) for c, v in cells.items())), None)
            sha = cells["sha256"].lower()
            if why is None and not cells["path"]:
                why = "it has no path"
            if why is None and not (len(sha) == 64 and set(sha) <= set("0123456789abcdef")):
                why = f"its sha256 {cells['sha256'][:80]!r} is not 64 hexadecimal digits"
            if why is None and info and cells.get("split") and cells["split"] not in splits:
                why = f"its split {cells['split']!r} is not one of {', '.join(sorted(splits))}"
            label = cells.get("label")
            if why is None and info and label and label not in info.class_names:
                why = f"its label {label!r} is not one of {', '.join(info.class_names)}"
            name = PurePosixPath(cells["path"].replace("\\", "/")).as_posix()
            if why is None and name in seen:
                why = f"it lists {name} again (first on line {seen[name]})"
            if why:
                problems.append(f"{path}: line {line}: {why}")
                continue
            seen[name] = line
            entries.append(Entry(name, sha, cells.get("split", ""), cells.get("label", "")))
    except csv.Error as error:
        problems.append(f"{path}: line {reader.line_num}: not CSV ({error})")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"{path}: and {len(problems) - MAX_PROBLEMS:,} more problem line(s)")
        raise ManifestError(shown)
    if not entries:
        raise ManifestError([f"{path}: no rows below the header path,sha256[,split][,label]"])
    return entries


def _below(path: str, folders: int) -> str:
    parts = PurePosixPath(path).parts
    return "/".join(parts[folders:]) if len(parts) > folders else path


def compare(ours, theirs) -> dict[str, list]:
    """A copy's entries against a publisher's, by path: `missing` (theirs only), `extra` (ours
    only), `different` ([path, what differs]: the content, or the split or label where the
    publisher gives them)."""
    mine = {e.path: e for e in ours}
    # a publisher may name paths from a folder above ours (classification_task/train/… where
    # the kit found the layout in classification_task/): drop the leading folders that match most
    best = max(range(4), key=lambda k: sum(_below(e.path, k) in mine for e in theirs))
    published = {_below(e.path, best): e for e in theirs}
    different = []
    for name in sorted(mine.keys() & published.keys()):
        a, b = mine[name], published[name]
        what = [
            field
            for field in ("sha256", "split", "label")
            if getattr(b, field) and getattr(a, field) != getattr(b, field)
        ]
        if what:
            different.append([name, ", ".join("content" if w == "sha256" else w for w in what)])
    return {
        "missing": sorted(published.keys() - mine.keys()),
        "extra": sorted(mine.keys() - published.keys()),
        "different": different,
    }


# --------------------------------------------------------------------------- s3f-data check
MAX_LISTED = 50  # paths printed per kind of finding; the rest are counted


def _listed(title: str, names: list[str]) -> list[str]:
    lines = [f"    {title}: {name}" for name in names[:MAX_LISTED]]
    if len(names) > MAX_LISTED:
        lines.append(f"    … and {len(names) - MAX_LISTED:,} more {title}")
    return lines


def report_lines(info, listing: Listing, manifest_file=None, cache_dir=None) -> list[str]:
    """What `check` prints of the copy's identity: its manifest, byte-identical files across
    splits, an extra training folder's copies of training files and, given a publisher's
    manifest, the files missing, extra or different. A bad manifest file raises ManifestError."""
    theirs = read_manifest(manifest_file, info) if manifest_file else None
    entries, unread = manifest_entries(info, listing, cache_dir)
    record = manifest_record(info, entries, unread)
    lines = [
        f"  data manifest {record['sha256']} ({record['files']:,} files; the same for any "
        "copy of these images, wherever unzipped)"
    ]
    if unread:
        lines.append(f"  {len(unread)} file(s) could not be read, so are not in it")
    groups = duplicate_groups(entries)
    across = cross_split(groups)
    lines.append(
        f"  {len(groups)} group(s) of byte-identical files, {len(across)} across splits"
        + (":" if across else "")
    )
    for group in across[:MAX_LISTED]:
        lines.append("    " + " = ".join(f"{e.path} ({e.split})" for e in group))
    if len(across) > MAX_LISTED:
        lines.append(f"    … and {len(across) - MAX_LISTED:,} more groups across splits")
    for folder, (copies, files) in copies_of_training(info, entries).items():
        if copies:
            lines.append(
                f"  {folder}/: {copies} of its {files} files are byte copies of training files "
                "(the paper trains on both: those images count twice)"
            )
    if theirs is not None:
        found = compare(entries, theirs)
        if not any(found.values()):
            lines.append(f"  matches {manifest_file}: every file, byte for byte")
        else:
            lines.append(
                f"  differs from {manifest_file}: {len(found['missing'])} missing, "
                f"{len(found['extra'])} extra, {len(found['different'])} different"
            )
            lines += _listed("missing", found["missing"])
            lines += _listed("extra", found["extra"])
            lines += _listed("different", [f"{p} ({what})" for p, what in found["different"]])
    return lines
