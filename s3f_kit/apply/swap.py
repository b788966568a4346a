"""s3f-swap: does a trained model read how the files were stored? (issue 35, item 2)

    s3f-swap runs/S3F_Concat_BUSI/seed42 ~/data/BUSI --baseline runs/Spatial_BUSI/seed42

Each test image is stored again with another class's acquisition signature (the shortcut
audit's per-class profile) and predicted again; the command prints how many predictions flip,
with Wilson intervals, beside the control (the image stored with its own class's signature) and,
where the dataset ships lesion masks (BUSI), the accuracy with the lesion painted out. Both
models are scored on the same images when --baseline is given. The test images: the run
folder's split.csv rows marked test, else the dataset's official test split, else every image.
The findings go to acquisition_swap.json beside the model (or --out). data_setup.swap does the
work, with the models' own preprocessing (preprocessing.json: size, channels, the arms).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SWAP_FILE = "acquisition_swap.json"


def test_items(listing, model_spec: str) -> tuple[list, str]:
    """(path, label) of the images to swap and where that choice came from: the run folder's
    split.csv (its test rows), the official test split, or every image."""
    from data_setup.splitting import read_split_file

    items = [item for pairs in listing.splits.values() for item in pairs]
    split_csv = Path(model_spec) / "split.csv"
    if split_csv.is_file():
        table = read_split_file(split_csv)
        chosen = [
            (p, y) for p, y in items if table.get(str(p.relative_to(listing.root))) == "test"
        ]
        if not chosen:
            raise ValueError(f"{split_csv}: no test rows name a file of {listing.root}")
        return chosen, f"the test rows of {split_csv}"
    if "test" in listing.splits:
        return listing.splits["test"], "the official test split"
    return items, "every image (no split.csv beside the model, no official test split)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="s3f-swap",
        description="Acquisition-swap test: do a model's predictions flip when a test image is "
        "stored the way another class was? (docs/shortcuts.md)",
    )
    parser.add_argument("model", help="run folder, .keras file or release name")
    parser.add_argument("data_dir", help="the dataset folder the model was trained on")
    parser.add_argument(
        "--baseline", metavar="MODEL", help="a second model (e.g. the spatial baseline's run)"
    )
    parser.add_argument("--out", help=f"JSON to write (default: {SWAP_FILE} beside the model)")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (large test sets)")
    args = parser.parse_args(argv)  # --help answers before TensorFlow is imported
    from s3f_kit.run import env as s3f_env

    s3f_env.import_tensorflow_quietly()
    from data_setup.datasets import dataset_info
    from data_setup.fetch import FetchError
    from data_setup.files import write_json_atomic
    from data_setup.layouts import DatasetError, discover
    from data_setup.loading import default_cache_dir
    from data_setup.shortcuts import recorded_summary
    from data_setup.swap import acquisition_swap, keras_predictor, report_lines
    from s3f_kit.apply.predict import resolve_model

    specs = {"model": args.model, **({"baseline": args.baseline} if args.baseline else {})}
    try:
        resolved = {role: resolve_model(spec) for role, spec in specs.items()}
        for _, _, notes in resolved.values():
            for note in notes:
                print(note)
        prep = resolved["model"][1]
        info = dataset_info(prep.dataset)
        if {r[1].dataset for r in resolved.values()} != {info.id}:
            raise ValueError("the two models were trained on different datasets")
        listing = discover(info, args.data_dir)
        audit = recorded_summary(info, listing, default_cache_dir(), seed=args.seed)
        if not audit.get("assessed"):
            raise ValueError(f"the shortcut audit cannot profile the classes: {audit['why']}")
        items, chosen = test_items(listing, args.model)
        print(f"{len(items)} test images: {chosen}")
        found = None
        for role, (model, model_prep, _) in resolved.items():
            name = f"{role}: {specs[role]}"
            one = acquisition_swap(
                {name: keras_predictor(model)}, items, audit["per_class"],
                list(model_prep.class_names), tuple(model_prep.image_size), model_prep.channels,
                resize=model_prep.resize, reencode=model_prep.reencode, masks=True,
                seed=args.seed,
            )  # fmt: skip
            if found is None:
                found = {"test_images": chosen, "shortcuts": audit, **one}
            else:
                found["models"].update(one["models"])
    except (ValueError, OSError, FetchError, DatasetError) as error:
        print(f"s3f-swap: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(report_lines(found)))
    model_path = Path(args.model)
    out = Path(args.out) if args.out else (
        (model_path if model_path.is_dir() else model_path.parent) / SWAP_FILE
        if model_path.exists() else Path(SWAP_FILE)
    )  # fmt: skip
    try:
        write_json_atomic(out, found)
    except OSError as error:
        print(f"s3f-swap: error: {out}: the findings could not be written: {error}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"→ {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
