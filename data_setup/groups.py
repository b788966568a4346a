"""Which images belong together: the patient of a chest film, the lesion of a dermoscopy photo.

A validation split that shares a patient or a lesion with training selects checkpoints on
leaked data. Near-duplicate grouping (data_setup.audit) does not catch it, because two films of
one patient, or two photographs of one lesion, are different images. The groups come from what
each dataset records:

- Chest X-Ray (Kermany): the file name. `person1946_bacteria_4874.jpeg` and
  `person1946_bacteria_4875.jpeg` are patient `person1946`. Normal films are `IM-NNNN-MMMM` or
  `NORMAL2-IM-NNNN-MMMM`, patient `IM-NNNN` or `NORMAL2-IM-NNNN`; the two series are numbered
  apart, so they are kept apart.
- HAM10000: the lesion id, from the ISIC 2018 lesion-groupings CSV
  (`ISIC2018_Task3_Training_LesionGroupings.csv`: `image`, `lesion_id`) or the HAM10000 metadata
  (`HAM10000_metadata.csv`: `lesion_id`, `image_id`, …), when either sits in the dataset folder.
  Without one, images stay ungrouped, and `check` says so.
- Custom data: an optional `group` column in its CSV (read by data_setup.custom).

Which rule applies is a fact of each dataset (`DatasetInfo.grouping`).
"""

from __future__ import annotations

import csv
import heapq
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np

from data_setup.layouts import DatasetError

KERMANY_PATIENT = re.compile(r"^(person\d+)_|^((?:NORMAL2-)?IM-\d+)-", re.IGNORECASE)
LESION_CSVS = {  # file name → (image column, lesion column)
    "ISIC2018_Task3_Training_LesionGroupings.csv": ("image", "lesion_id"),
    "HAM10000_metadata.csv": ("image_id", "lesion_id"),
}
GROUP_NOUNS = {"kermany_patient": "patients", "ham_lesion": "lesions", "csv_group": "groups"}
MAX_CSV_BYTES = 32 * 2**20  # the real lesion CSVs are < 1 MB; a larger file is not one of them


def kermany_patient(file_name: str) -> str | None:
    """The patient of a Kermany chest film from its file name, or None if it has none."""
    match = KERMANY_PATIENT.match(Path(file_name).name)
    if not match:
        return None
    return match.group(1).lower() if match.group(1) else match.group(2).upper()


def _find_lesion_csv(root: Path) -> Path | None:
    for depth in ("", "*/", "*/*/"):
        for name in LESION_CSVS:
            found = sorted(root.glob(depth + name))
            if found:
                return found[0]
    return None


def read_lesion_csv(path: Path) -> dict[str, str]:
    """image id → lesion id from one of the LESION_CSVS (bounded read, one clear error)."""
    image_column, lesion_column = LESION_CSVS[path.name]
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise DatasetError(
            f"{path}: {size / 2**20:.0f} MB is too large for a lesion-groupings CSV "
            f"(at most {MAX_CSV_BYTES // 2**20} MB expected)"
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not UTF-8 text ({error.reason})") from error
    rows = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in rows.fieldnames or []]
    if image_column not in header or lesion_column not in header:
        raise DatasetError(
            f"{path}: columns {header}; expected '{image_column}' and '{lesion_column}'"
        )
    table = {}
    for row in rows:
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        if row.get(image_column) and row.get(lesion_column):
            table[row[image_column]] = row[lesion_column]
    return table


def image_groups(grouping: str, root: Path, files: list[Path]) -> tuple[list[str | None], str]:
    """(group of each file, where the groups come from) under the dataset's grouping rule.
    `files` are paths of the dataset's images; an image with no group gets None."""
    if grouping == "kermany_patient":
        return [kermany_patient(f.name) for f in files], "patient ids from Kermany file names"
    if grouping == "ham_lesion":
        path = _find_lesion_csv(Path(root))
        if path is None:
            names = " or ".join(LESION_CSVS)
            return [None] * len(files), f"no lesion ids (put {names} in the dataset folder)"
        table = read_lesion_csv(path)
        return [table.get(f.stem) for f in files], f"lesion ids from {path.name}"
    return [None] * len(files), "no patient or lesion ids"


def listing_groups(info, listing) -> tuple[dict[str, str], str]:
    """{file relative to the dataset root: patient or lesion id} of a discovered dataset, and
    where the ids come from. Files without an id are left out."""
    if listing.groups:  # a custom CSV's group column
        table = {str(p.relative_to(listing.root)): g for p, g in listing.groups.items()}
        return table, "the CSV's group column"
    files = [path for items in listing.splits.values() for path, _ in items]
    ids, source = image_groups(info.grouping, listing.root, files)
    table = {str(p.relative_to(listing.root)): g for p, g in zip(files, ids, strict=True) if g}
    return table, source


def group_report(groups_by_split: dict[str, list[str | None]]) -> dict:
    """Groups per split, images without a group, and the groups two splits share."""
    sets = {split: set(groups) - {None} for split, groups in groups_by_split.items()}
    report = {
        "groups": {split: len(found) for split, found in sets.items()},
        "ungrouped": {
            split: sum(g is None for g in groups) for split, groups in groups_by_split.items()
        },
        "largest": {
            split: max(Counter(g for g in groups if g is not None).values(), default=0)
            for split, groups in groups_by_split.items()
        },
    }
    splits = sorted(sets)
    report["shared"] = {
        f"{a}/{b}": sorted(sets[a] & sets[b])
        for i, a in enumerate(splits)
        for b in splits[i + 1 :]
        if sets[a] & sets[b]
    }
    return report


def combine_groups(*labelings) -> list[int]:
    """One integer group per image such that two images share a group whenever any labeling
    puts them together (a patient id, a lesion id, a near-duplicate group), transitively: the
    connected components of the graph linking each image to the first one with its label (as
    data_setup.audit groups duplicate pairs). None in a labeling means no group there."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    sizes = {len(labels) for labels in labelings}
    if len(sizes) != 1:
        raise ValueError(f"combine_groups: labelings of different lengths {sorted(sizes)}")
    count = sizes.pop()
    rows, cols = [], []
    for labels in labelings:
        first = {}
        for index, label in enumerate(labels):
            if label is not None:
                rows.append(first.setdefault(label, index))
                cols.append(index)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(count, count))
    return connected_components(graph, directed=False)[1].tolist()


def centred_groups(count: int, pairs) -> tuple[np.ndarray, int]:
    """(a group id per image, how many chains were re-split) from near-duplicate pairs (i, j, …):
    every member of a group is a verified near-duplicate of one centre member.

    Connected components alone chain distinct images (A~B, B~C, C~D puts A and D together
    though they do not look alike; a long chain can swallow a class). A component where one
    member is paired with every other is kept whole; any other is re-split greedily: the member
    with the most pairs among those left becomes a centre and takes its partners, until none is
    left (ties to the lower index: deterministic). A pair whose images land in two groups may
    then straddle a split, which the run's summary says (the count returned)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.array([(p[0], p[1]) for p in pairs], int).reshape(-1, 2)
    edges = edges[edges[:, 0] != edges[:, 1]]
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(count, count))
    components = connected_components(graph, directed=False)[1]
    partners: dict[int, set[int]] = {}
    for i, j in edges.tolist():
        partners.setdefault(i, set()).add(j)
        partners.setdefault(j, set()).add(i)
    ids = components.copy()
    next_id, resplit = int(components.max(initial=-1)) + 1, 0
    members_of: dict[int, list[int]] = {}
    for index, component in enumerate(components.tolist()):
        members_of.setdefault(component, []).append(index)
    for members in members_of.values():
        if len(members) < 3 or any(len(partners[m]) == len(members) - 1 for m in members):
            continue  # a single image, a pair, or a star: every member pairs with the centre
        resplit += 1
        left = set(members)
        degree = {m: len(partners[m]) for m in members}  # pairs among those left
        heap = [(-degree[m], m) for m in members]  # most pairs first, then the lower index
        heapq.heapify(heap)
        while left:
            negative, centre = heapq.heappop(heap)
            if centre not in left or -negative != degree[centre]:
                continue  # taken, or an outdated count
            group = {centre} | (partners[centre] & left)
            ids[sorted(group)] = next_id
            next_id += 1
            left -= group
            for member in group:
                for partner in partners[member] & left:
                    degree[partner] -= 1
                    heapq.heappush(heap, (-degree[partner], partner))
    return ids, resplit


def _class_name(c, class_names) -> str:
    return str(class_names[c]) if c < len(class_names) else str(c)


def largest_group_share(labels, groups, class_names=()) -> dict[str, float]:
    """{class: the share of its images that its largest group holds} (0..1): how far one group
    (a patient, a lesion, near-duplicates) can sway a split of that class."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    shares = {}
    for c in np.unique(labels).tolist():
        members = groups[labels == c]
        largest = max(np.unique(members, return_counts=True)[1], default=0)
        shares[_class_name(c, class_names)] = round(float(largest / len(members)), 4)
    return shares


def share_words(shares: dict[str, float]) -> str:
    """largest_group_share in the words check and a run's summary print."""
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())


def group_facts_line(found: dict) -> str:
    """The split summary's line about its groups: the largest group's share per class and the
    near-duplicate chains re-split (centred_groups)."""
    line = f"largest group per class: {share_words(found['largest_group_share'])}"
    if found.get("chains_split"):
        line += (
            f"; {found['chains_split']} chain(s) of near-duplicates re-split so that each "
            "group's members look like its centre"
        )
    return line


def assign_groups(labels, groups, shares, seed: int, what: str, class_names=(), names=None,
                  advice: str = "") -> np.ndarray:  # fmt: skip
    """The part (0..len(shares)-1) of each image: whole groups assigned so that every part
    holds every class, with class proportions near `shares` (e.g. [0.85, 0.15] for a holdout,
    [1/k]*k for k folds). Greedy over groups, seeded:
    1. every class (the one in fewest groups first) puts, into each part still without it
       (smallest part first), its unassigned group nearest in size to that part's share of
       the class;
    2. the other groups, largest first (ties in seeded order), each go to the part whose
       per-class shortfall against its target share the group fills best.
    (scikit-learn's StratifiedGroupKFold balances proportions but can leave a class out of a
    part when a few groups are large.) A class with fewer groups than parts cannot be in every
    part: one DatasetError sentence names it, its groups (`names`: an example file per image)
    and what to do (`advice`)."""
    labels, shares = np.asarray(labels), np.asarray(shares, float)
    parts = len(shares)
    keys, inverse = np.unique(np.asarray(groups), return_inverse=True)
    classes, column = np.unique(labels, return_inverse=True)
    counts = np.zeros((len(keys), len(classes)), int)
    np.add.at(counts, (inverse, column), 1)
    holding = (counts > 0).sum(0)
    for c in np.argsort(holding, kind="stable"):
        if holding[c] < parts:
            raise DatasetError(_too_few_groups(
                counts[:, c], inverse, labels, classes[c], parts, what, class_names, names, advice
            ))  # fmt: skip
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))  # the seeded tie order
    rank = np.empty(len(keys), int)
    rank[order] = np.arange(len(keys))
    part_of = np.full(len(keys), -1)
    held = np.zeros((parts, len(classes)), float)
    target = shares[:, None] * counts.sum(0)[None, :]
    for c in np.argsort(holding, kind="stable"):
        for part in np.argsort(shares, kind="stable"):  # the smallest part first
            if held[part, c]:
                continue
            free = np.flatnonzero((part_of < 0) & (counts[:, c] > 0))
            if not len(free):
                break
            gap = np.abs(counts[free, c] - target[part, c])
            nearest = free[np.lexsort((rank[free], gap))[0]]
            part_of[nearest] = part
            held[part] += counts[nearest]
    scale = 1 / counts.sum(0)  # every class weighs the same, whatever its size
    rest = np.flatnonzero(part_of < 0)
    for g in rest[np.lexsort((rank[rest], -counts[rest].sum(1)))]:
        shortfall = ((held - target) * scale) @ counts[g]
        part = int(np.argmin(shortfall))
        part_of[g] = part
        held[part] += counts[g]
    empty = [(p, c) for p in range(parts) for c in range(len(classes)) if not held[p, c]]
    if empty:  # only where groups mix classes and the first pass used them up
        part, c = empty[0]
        raise DatasetError(
            f"{what}: no grouping of the images puts class "
            f"{_class_name(classes[c], class_names)} in every part, because its groups also hold "
            f"other classes{advice}"
        )
    return part_of[inverse]


def _too_few_groups(column, inverse, labels, label, parts, what, class_names, names, advice):
    """The sentence for a class whose images sit in fewer groups than there are parts."""
    sizes = sorted(column[column > 0].tolist(), reverse=True)
    total = int(sum(sizes))
    example = ""
    if names is not None:
        biggest = int(np.argmax(column))
        members = [n for n, g, y in zip(names, inverse, labels, strict=True)
                   if g == biggest and y == label]  # fmt: skip
        example = f" (e.g. {', '.join(map(str, members[:2]))})"
    held = (
        f"all {total} images in one group{example}"
        if len(sizes) == 1
        else f"its {total} images in only {len(sizes)} groups of "
        f"{', '.join(map(str, sizes))} images{example}"
    )
    return (
        f"{what}: class {_class_name(label, class_names)} has {held}, which cannot give each "
        f"of the {parts} parts an image of it while keeping every patient, lesion and "
        f"near-duplicate group whole{advice}"
    )


def grouped_folds(labels, groups, folds: int, seed: int, class_names=(), names=None):
    """[(fit_rows, held_rows)] of a stratified group k-fold: every group on one side of each
    fold, every class in every held fold (assign_groups, shares 1/k). One clear error when the
    groups cannot make `folds` such folds."""
    labels = np.asarray(labels)
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    distinct = len(np.unique(np.asarray(groups)))
    if distinct < folds:
        raise DatasetError(
            f"cannot make {folds} grouped folds from {distinct} patient/lesion/duplicate groups"
        )
    classes = np.unique(labels)
    fewest = min(len(np.unique(np.asarray(groups)[labels == c])) for c in classes)
    advice = (
        f"; use at most {fewest} folds (--folds {fewest}), or list the near-duplicates with "
        "`s3f-data audit` and remove copies"
        if fewest >= 2
        else "; list the near-duplicates with `s3f-data audit` and remove copies, or add images"
    )
    part = assign_groups(labels, groups, [1 / folds] * folds, seed,
                         f"cannot make {folds} grouped cross-validation folds",
                         class_names, names, advice)  # fmt: skip
    return [(np.flatnonzero(part != k), np.flatnonzero(part == k)) for k in range(folds)]


def report_lines(info, listing, excluded=frozenset()) -> list[str]:
    """What `check` prints about patients or lesions: ids per split, images without one, and
    the ids that two official splits share (a leak the split itself makes). `excluded`: files
    (paths) that check found unusable."""
    if not (info.grouping or listing.groups):
        return []
    table, source = listing_groups(info, listing)
    noun = GROUP_NOUNS.get(info.grouping, "groups") if not listing.groups else "groups"
    by_split = {
        split: [table.get(str(p.relative_to(listing.root))) for p, _ in items if p not in excluded]
        for split, items in listing.splits.items()
    }
    report = group_report(by_split)
    counts = ", ".join(f"{split} {n:,}" for split, n in report["groups"].items())
    lines = [f"  {noun} ({source}): {counts}"]
    ungrouped = {s: n for s, n in report["ungrouped"].items() if n}
    if ungrouped and table:
        lines.append(
            "  images without an id: " + ", ".join(f"{s} {n:,}" for s, n in ungrouped.items())
        )
    shares = []
    for split, items in listing.splits.items():
        kept = [(p, label) for p, label in items if p not in excluded]
        ids = [table.get(str(p.relative_to(listing.root))) or str(p) for p, _ in kept]
        if kept and table:  # images without an id are each their own group
            found = largest_group_share([label for _, label in kept], ids, info.class_names)
            shares.append(f"{split} {share_words(found)}")
    if shares:
        lines.append(f"  largest {noun[:-1]} per class (its share of the class): "
                     + "; ".join(shares))  # fmt: skip
    for pair, shared in report["shared"].items():
        a, b = pair.split("/")
        lines.append(
            f"  warning: {len(shared):,} {noun} have images in both {a} and {b} "
            f"(e.g. {', '.join(shared[:3])}): the official split is not {noun[:-1]}-disjoint; "
            "clean-test metrics leave their test images out"
        )
    return lines
