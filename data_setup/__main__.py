"""Command line: check, audit, fetch and synthesize datasets, and look for acquisition shortcuts.

s3f-data check ChestXRay ~/data/chest_xray   # --strict: damaged files unusable
s3f-data check Custom ~/data/my_images --channels 3
s3f-data check BRISC2025 ~/data/brisc --manifest brisc_manifest.csv
s3f-data fetch BUSI --zip ~/Downloads/busi.zip --dest ~/data/BUSI
s3f-data audit BUSI ~/data/BUSI --out busi_duplicates.csv
s3f-data shortcuts BRISC2025 ~/data/brisc --json brisc_shortcuts.json --out files.csv
s3f-data synth ~/data/demo --count 24 --size 96 --seed 0
"""

from __future__ import annotations

import argparse
import sys

from data_setup.datasets import DATASETS
from data_setup.fetch import MAX_DOWNLOAD_GB, MAX_UNPACKED_GB


def check(
    dataset: str, root: str, strict: bool = False, channels: int = 1, manifest: str | None = None
) -> int:
    """Validate the layout, print counts per split and class, every problem file (errors:
    skipped) and every warning (decodes but looks damaged: used, unless --strict)."""
    from data_setup.datasets import CUSTOM
    from data_setup.layouts import DatasetError, discover
    from data_setup.loading import (
        BadImage,
        damage_of,
        decode_bytes,
        read_bytes,
        stratified_split_problem,
    )

    try:
        if dataset == CUSTOM:
            from data_setup.custom import custom_dataset

            info = custom_dataset(root, channels)
        else:
            info = DATASETS[dataset]
        listing = discover(info, root)
    except (DatasetError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{info.title}: found at {listing.root}")
    if dataset == CUSTOM:
        print(f"  classes (label order): {', '.join(info.class_names)}; layout {info.layout_kind}")
    problems, warnings_, bad, undecodable = list(listing.problems), [], set(), set()
    for items in listing.splits.values():
        for path, _ in items:  # decode every image once: what training would hit
            try:
                data = read_bytes(path)
                decode_bytes(data, (32, 32), info.channels, path)
            except BadImage as error:
                problems.append((path, f"{error} (skipped)"))
                bad.add(path)
                undecodable.add(path)
                continue
            damage = damage_of(data)
            if damage:
                warnings_.append((path, damage + (" (skipped: --strict)" if strict else " (used)")))
                if strict:
                    bad.add(path)
    for split, items in listing.splits.items():
        usable = [(p, label) for p, label in items if p not in bad]
        counts = [sum(1 for _, label in usable if label == i) for i in range(len(info.class_names))]
        per_class = "  ".join(f"{n}={c}" for n, c in zip(info.class_names, counts, strict=True))
        print(f"  {split:5s} {len(usable):6d}  {per_class}")
    if listing.ignored_masks:
        print(f"  ({listing.ignored_masks} segmentation masks ignored, as in the paper)")
    try:
        from data_setup.groups import report_lines

        for line in report_lines(info, listing, bad):
            print(line)
    except DatasetError as error:  # e.g. an unreadable lesion CSV: the images are still usable
        print(f"  warning: {error} (patient/lesion ids not read; images still usable)")
    # the copy's identity (data_setup.manifest): its manifest, byte copies, a publisher's
    try:
        for line in _identity_lines(info, listing, manifest):
            print(line)
    except ValueError as error:  # ManifestError: one sentence per problem of the given file
        print(f"error: {error}".replace("\n", "\nerror: "), file=sys.stderr)
        return 1
    for title, entries in (("problem file(s)", problems), ("warning(s)", warnings_)):
        if entries:
            print(f"{len(entries)} {title}:")
            for path, why in entries:
                print(f"  {_shown(path)}: {why}")
    errors = []
    empty = [s for s, items in listing.splits.items() if all(p in bad for p, _ in items)]
    if empty:
        errors.append(f"no readable images in split(s) {', '.join(empty)}")
    train_items = [item for s, items in listing.splits.items() if s != "test" for item in items]
    missing = [
        name
        for index, name in enumerate(info.class_names)
        if not any(label == index and p not in bad for p, label in train_items)
    ]
    if missing:
        errors.append(f"no training images of class(es) {', '.join(missing)}")
    if "all" in listing.splits and not errors:  # load_dataset splits what decodes, as here
        labels = [label for p, label in listing.splits["all"] if p not in undecodable]
        what = f"{info.id} train/test"
        if problem := stratified_split_problem(labels, info.test_fraction, what, info.class_names):
            errors.append(problem)
    if errors:
        for error in errors:
            print(f"error: {listing.root}: {error}", file=sys.stderr)
        return 1
    print(_shortcut_summary(info, root))
    print("usable" + (" (with the problems above)" if problems or warnings_ else ""))
    return 0


def _identity_lines(info, listing, manifest: str | None) -> list[str]:
    """data_setup.manifest's lines, the file hashes cached in the kit's cache folder (a run's
    load_dataset reads them there) or, where that cannot be written, not cached."""
    from data_setup.cache import default_cache_dir
    from data_setup.files import CacheError, ensure_writable_dir
    from data_setup.manifest import report_lines

    try:
        cache_dir = ensure_writable_dir(default_cache_dir())
    except CacheError:
        cache_dir = None
    return report_lines(info, listing, manifest, cache_dir)


def audit_command(dataset: str, root: str, out: str | None, channels: int = 1) -> int:
    """Print a duplicate summary and write every pair to a CSV."""
    from data_setup.audit import MIN_LAYOUT_CORRELATION, MIN_PHASE_CORRELATION, audit
    from data_setup.datasets import CUSTOM
    from data_setup.groups import share_words
    from data_setup.layouts import DatasetError

    try:
        info = dataset
        if dataset == CUSTOM:
            from data_setup.custom import custom_dataset

            info = custom_dataset(root, channels)
        out = out or f"{dataset}_duplicates.csv"
        found = audit(info, root, out)
    except (DatasetError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{dataset} at {found['root']}: {found['images']} images")
    if found["left_out"]:
        print(f"  {len(found['left_out'])} problem file(s):")
        for path, why in found["left_out"]:
            print(f"    {_shown(path)}: {why}")
    print(
        f"  {found['pairs']} duplicate pair(s) ({found['exact_pairs']} byte-identical), in "
        f"{found['duplicate_groups']} group(s) holding {found['images_in_groups']} image(s)"
    )
    print(f"  largest near-duplicate group per class (its share of the class): "
          f"{share_words(found['largest_group_share'])}")  # fmt: skip
    if found["chains_split"]:
        print(f"  {found['chains_split']} chain(s) of near-duplicates re-split so that each "
              "group's members look like its centre (A like B like C, A not like C)")  # fmt: skip
    for splits, count in sorted(found["pairs_by_splits"].items()):
        print(f"  {splits:12s} {count}")
    leaks = sum(c for s, c in found["pairs_by_splits"].items() if len(set(s.split("/"))) > 1)
    if leaks:
        print(f"  {leaks} pair(s) cross splits: test numbers may be inflated (see clean_test)")
    if found["distinct_pairs"]:
        share = 100 * found["candidate_pairs"] / found["distinct_pairs"]
        shown = f"{share:.2f}" if share >= 0.01 or share == 0 else f"{share:.1g}"  # 0.001 %
        print(f"  {found['candidate_pairs']} candidate pair(s) verified ({shown} % of all "
              "pairs: look-alike images cost time, not many images)")  # fmt: skip
    print(
        f"pairs in {out} (aligned phase correlation ≥ {MIN_PHASE_CORRELATION} and pixel "
        f"correlation ≥ {MIN_LAYOUT_CORRELATION}; similarity ≥ 1)"
    )
    return 0


def _shortcut_summary(info, root) -> str:
    """check's line on acquisition shortcuts: the header-only half of `shortcuts`."""
    from data_setup.layouts import DatasetError
    from data_setup.shortcuts import shortcut_audit, verdict

    try:
        found = shortcut_audit(info, root, probe=False)
    except DatasetError as error:  # too few images to score: the images are still usable
        return f"  shortcuts: not assessed ({error})"
    return f"  shortcuts: {verdict(found)} (details: s3f-data shortcuts {info.id} ROOT)"


def shortcuts_command(dataset, root, json_out, csv_out, probe=True, channels=1) -> int:
    """Print the per-class acquisition table and the verdict; write the JSON and per-file CSV."""
    from data_setup.datasets import CUSTOM
    from data_setup.files import write_csv_atomic, write_json_atomic
    from data_setup.layouts import DatasetError
    from data_setup.shortcuts import report_lines, shortcut_audit

    try:
        if dataset == CUSTOM:
            from data_setup.custom import custom_dataset

            info = custom_dataset(root, channels)
        else:
            info = DATASETS[dataset]
        found = shortcut_audit(info, root, probe=probe)
        rows = found.pop("_rows")
        if json_out:
            write_json_atomic(json_out, found)
        if csv_out:
            import pandas as pd

            write_csv_atomic(csv_out, pd.DataFrame(rows), index=False)
    except (DatasetError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{dataset} at {found['root']}: {found['images']} images")
    for path, why in found["left_out"]:
        print(f"  left out {_shown(path)}: {why}")
    for line in report_lines(found):
        print(line)
    return 0


def _shown(path) -> str:
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="s3f-data", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p_check = commands.add_parser("check", help="validate a dataset folder and list problems")
    p_check.add_argument("dataset", choices=[*DATASETS, "Custom"])
    p_check.add_argument("root")
    p_check.add_argument(
        "--strict", action="store_true", help="count images that look damaged as unusable"
    )
    p_check.add_argument(
        "--channels", type=int, default=1, choices=(1, 3), help="Custom: 1 gray, 3 RGB"
    )
    p_check.add_argument(
        "--manifest",
        metavar="FILE",
        help="compare with a publisher's manifest: CSV path,sha256[,split][,label] (docs/data.md)",
    )
    p_audit = commands.add_parser(
        "audit", help="find exact and near-duplicate images within and across splits"
    )
    p_audit.add_argument("dataset", choices=[*DATASETS, "Custom"])
    p_audit.add_argument("root")
    p_audit.add_argument("--out", help="CSV of the pairs (default <dataset>_duplicates.csv)")
    p_audit.add_argument("--channels", type=int, default=1, choices=(1, 3))
    p_short = commands.add_parser(
        "shortcuts", help="does how the files were stored predict the class? (docs/shortcuts.md)"
    )
    p_short.add_argument("dataset", choices=[*DATASETS, "Custom"])
    p_short.add_argument("root")
    p_short.add_argument("--json", dest="json_out", help="write the findings as JSON")
    p_short.add_argument("--out", help="CSV of every file's metadata and tensor features")
    p_short.add_argument(
        "--header-only", action="store_true", help="skip the decoded-tensor probe (faster)"
    )
    p_short.add_argument("--channels", type=int, default=1, choices=(1, 3))
    p_fetch = commands.add_parser("fetch", help="download/unpack an archive into place")
    p_fetch.add_argument("dataset", choices=list(DATASETS))
    source = p_fetch.add_mutually_exclusive_group(required=True)
    source.add_argument("--zip", dest="zip_path")
    source.add_argument("--url")
    source.add_argument("--gdrive", dest="gdrive_id", help="Google Drive file id")
    p_fetch.add_argument("--dest", required=True)
    p_fetch.add_argument(
        "--max-download-gb",
        type=float,
        default=MAX_DOWNLOAD_GB,
        help="refuse a larger download (default %(default)s)",
    )
    p_fetch.add_argument(
        "--max-unpacked-gb",
        type=float,
        default=MAX_UNPACKED_GB,
        help="refuse an archive that unpacks to more (default %(default)s)",
    )
    p_synth = commands.add_parser("synth", help="write the synthetic demo datasets")
    p_synth.add_argument("root")
    p_synth.add_argument("--count", type=int, default=24, help="training images per class")
    p_synth.add_argument("--size", type=int, default=96, help="source image width in pixels")
    p_synth.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.command == "check":
        return check(args.dataset, args.root, args.strict, args.channels, args.manifest)
    if args.command == "audit":
        return audit_command(args.dataset, args.root, args.out, args.channels)
    if args.command == "shortcuts":
        return shortcuts_command(args.dataset, args.root, args.json_out, args.out,
                                 not args.header_only, args.channels)  # fmt: skip
    if args.command == "fetch":
        from data_setup.fetch import FetchError, fetch

        try:
            dest = fetch(
                args.dest,
                zip_path=args.zip_path,
                url=args.url,
                gdrive_id=args.gdrive_id,
                dataset=args.dataset,
                max_download_gb=args.max_download_gb,
                max_unpacked_gb=args.max_unpacked_gb,
            )
        except (FetchError, ValueError, OSError) as error:  # one sentence, never a traceback
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"unpacked into {dest}")
        return check(args.dataset, str(dest))
    from data_setup.synth import synth_all

    for dataset, folder in synth_all(args.root, args.count, args.size, args.seed).items():
        print(f"{dataset}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
