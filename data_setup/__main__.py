"""Command line: check, fetch and synthesize datasets.

python -m data_setup check ChestXRay ~/data/chest_xray
python -m data_setup fetch BUSI --zip ~/Downloads/busi.zip --dest ~/data/BUSI
python -m data_setup synth ~/data/demo --count 24 --size 96 --seed 0
"""

from __future__ import annotations

import argparse
import sys

from data_setup.datasets import DATASETS


def check(dataset: str, root: str) -> int:
    """Validate the layout, print counts per split and class and every problem file."""
    from data_setup.layouts import DatasetError, discover
    from data_setup.loading import BadImage, decode_image

    info = DATASETS[dataset]
    try:
        listing = discover(dataset, root)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{info.title}: found at {listing.root}")
    problems = list(listing.problems)
    for items in listing.splits.values():
        for path, _ in items:  # decode every image once: what training would hit
            try:
                decode_image(path, (32, 32), info.channels)
            except BadImage as error:
                problems.append((path, f"{error} (would be skipped)"))
    bad = {p for p, why in problems if "would be skipped" in why}
    for split, items in listing.splits.items():
        usable = [(p, label) for p, label in items if p not in bad]
        counts = [sum(1 for _, label in usable if label == i) for i in range(len(info.class_names))]
        per_class = "  ".join(f"{n}={c}" for n, c in zip(info.class_names, counts, strict=True))
        print(f"  {split:5s} {len(usable):6d}  {per_class}")
    if listing.ignored_masks:
        print(f"  ({listing.ignored_masks} segmentation masks ignored, as in the paper)")
    if problems:
        print(f"{len(problems)} problem file(s):")
        for path, why in problems:
            print(f"  {path}: {why}")
    empty = [s for s, items in listing.splits.items() if all(p in bad for p, _ in items)]
    if empty:
        print(f"error: no readable images in split(s) {', '.join(empty)}", file=sys.stderr)
        return 1
    print("usable" + (" (with the problems above)" if problems else ""))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_setup", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p_check = commands.add_parser("check", help="validate a dataset folder and list problems")
    p_check.add_argument("dataset", choices=list(DATASETS))
    p_check.add_argument("root")
    p_fetch = commands.add_parser("fetch", help="download/unpack an archive into place")
    p_fetch.add_argument("dataset", choices=list(DATASETS))
    source = p_fetch.add_mutually_exclusive_group(required=True)
    source.add_argument("--zip", dest="zip_path")
    source.add_argument("--url")
    source.add_argument("--gdrive", dest="gdrive_id", help="Google Drive file id")
    p_fetch.add_argument("--dest", required=True)
    p_synth = commands.add_parser("synth", help="write the synthetic demo datasets")
    p_synth.add_argument("root")
    p_synth.add_argument("--count", type=int, default=24, help="training images per class")
    p_synth.add_argument("--size", type=int, default=96, help="source image width in pixels")
    p_synth.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.command == "check":
        return check(args.dataset, args.root)
    if args.command == "fetch":
        from data_setup.fetch import FetchError, fetch

        try:
            dest = fetch(args.dest, zip_path=args.zip_path, url=args.url, gdrive_id=args.gdrive_id)
        except (FetchError, ValueError) as error:
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
