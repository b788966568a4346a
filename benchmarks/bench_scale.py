"""A full-size rehearsal: every stage of the kit at the real datasets' counts and image sizes.

Writes synthetic datasets in the four real layouts at the real counts and source sizes
(data_setup.synth.synth_full_size: BRISC2025 6,010 at 512×512, Chest X-Ray 5,856 grayscale films
1,000–2,000 px wide, BUSI 780 PNGs with their masks, HAM10000 10,015 + 1,512 at 600×450 with its
CSVs), then measures wall time, peak RSS and disk of each stage, each in a child process of its
own (so peak RSS is that stage's alone, imports included):

    check     s3f-data check (every file decoded once)              disk: the dataset folder
    decode    load_dataset, empty cache (first decode at the paper's size)   disk: the cache
    reload    load_dataset from the cache + one pass over the training pixels (an epoch's reads)
    audit     data_setup.audit.audit (pairs CSV)                    disk: the CSV
              (the JSON's candidate_share: the share of all pairs that were verified)
    shortcuts data_setup.shortcuts.shortcut_audit header-only (the JSON's header_only_seconds:
              what check adds), then with the decoded-tensor probe (the wall column)
    holdout   load_dataset(protocol="holdout"): the near-duplicate-grouped validation split
    train     a few training steps of each model at the paper's input size: s/step (the wall
              column: the median step, batch begin → end, after a traced one), peak RSS;
              disk: its finished model.keras (as a run keeps it, without the optimizer's
              state; the JSON's checkpoint_mb is the file with it, which a run's resume/
              folder holds while it trains)
    evaluate  s3f_evaluation.evaluate_model on the full test split (predictions, figures,
              clean-test)
    results   s3f_results.build_results (tables, claims, figures) over fabricated run folders
              (the kit's own writers: predictions.csv + metrics.json; n = runs)

Each stage but train runs at several n (a subset of the full dataset, every split and class
scaled alike, hard-linked) and its growth exponent is the log-log least-squares slope of wall
time over n. Prints one table, pass/fail per target, and writes it as markdown + JSON.

    python benchmarks/bench_scale.py                      # everything at full size (long)
    python benchmarks/bench_scale.py --quick              # a few hundred images, small models
    python benchmarks/bench_scale.py --datasets HAM10000 --stages check,decode,reload
    python benchmarks/bench_scale.py --sizes 1000,2000,full --pairwise-max 2000 --keep
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

STAGES = ("check", "decode", "reload", "audit", "shortcuts", "holdout", "train", "evaluate",
          "results")  # fmt: skip
PAIRWISE = ("audit", "holdout", "evaluate")  # stages that compare images pairwise (capped n)
DATA_LAYER = ("check", "decode", "reload", "audit", "shortcuts", "holdout")
LINEAR_EXPONENT = 1.2  # targets (issue 18)
DATA_RSS_MB = 4096
RSS_DATASET = "HAM10000"


def growth_exponent(ns, seconds) -> float | None:
    """Slope of log(seconds) over log(n) by least squares: 1 linear, 2 quadratic."""
    points = [(n, s) for n, s in zip(ns, seconds, strict=True) if n > 0]
    if len({n for n, _ in points}) < 2:
        return None
    x = np.log([n for n, _ in points])
    y = np.log([max(s, 1e-6) for _, s in points])
    return float(np.polyfit(x, y, 1)[0])


def folder_mb(path) -> float:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size / 2**20
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


# --------------------------------------------------------------------------- child stages


def _size(job):
    return tuple(job["img_size"]) if job.get("img_size") else None


def stage_check(job):
    from data_setup.__main__ import check

    if check(job["dataset"], job["root"]) != 0:
        raise RuntimeError(f"check failed on {job['root']}")
    return {"disk_mb": folder_mb(job["root"])}


def stage_decode(job):
    from data_setup import load_dataset

    load_dataset(job["dataset"], job["root"], img_size=_size(job), cache_dir=job["cache"])
    return {"disk_mb": folder_mb(job["cache"])}


def stage_reload(job):
    from data_setup import load_dataset

    data = load_dataset(job["dataset"], job["root"], img_size=_size(job), cache_dir=job["cache"])
    images = data.splits["train"].source.images
    total = 0
    for start in range(0, len(images), 16):  # batch by batch, as a training epoch reads
        total += int(images[start : start + 16].sum(dtype=np.uint64))
    return {"checksum": total}


def stage_audit(job):
    from data_setup.audit import audit

    out = Path(job["out"]) / "pairs.csv"
    found = audit(job["dataset"], job["root"], out)
    share = found["candidate_pairs"] / max(found["distinct_pairs"], 1)
    return {"disk_mb": folder_mb(out), "pairs": found["pairs"],
            "candidate_pairs": found["candidate_pairs"], "candidate_share": share}  # fmt: skip


def stage_shortcuts(job):
    from data_setup.datasets import DATASETS
    from data_setup.shortcuts import shortcut_audit

    start = time.perf_counter()
    shortcut_audit(DATASETS[job["dataset"]], job["root"], probe=False)  # what check runs
    header = time.perf_counter() - start
    found = shortcut_audit(DATASETS[job["dataset"]], job["root"])  # metadata and tensor probes
    return {"header_only_seconds": round(header, 2), "kappa": found["kappa"],
            "tensor_kappa": found["tensor"]["kappa"]}  # fmt: skip


def stage_holdout(job):
    from data_setup import load_dataset

    data = load_dataset(
        job["dataset"], job["root"], img_size=_size(job), cache_dir=job["cache"], protocol="holdout"
    )
    return {"val_images": len(data.splits["val"])}


def _model(name, data):
    import s3f_common
    from s3f_kit import experiments as s3f_experiments
    from s3f_kit import recipe as s3f_recipe

    exp = s3f_experiments.EXPERIMENTS[name]
    return s3f_recipe.compile_model(
        s3f_common.build_model(
            exp.architecture,
            data.input_shape,
            exp.num_classes,
            exp.fusion,
            exp.spectranet,
            name=name,
            bn_momentum=0.99,
        )
    )


def StepTimes():  # noqa: N802 - a Keras callback class, made where Keras is imported
    """Wall time of each training step (batch begin → end) and of the whole fit. The fit's
    total is not the steps': the first fit after the tracing one waits ~0.7–0.9 s after its
    last step (tf.data tearing down an iterator), which divided by 3 steps made per-step
    times look quantized (1.71, 3.42, 6.83 s in 0.6.0's table)."""
    import keras

    class _StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.fit_seconds = 0.0

        def on_train_begin(self, logs=None):
            self._fit = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            self._step = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self._step)

        def on_train_end(self, logs=None):
            self.fit_seconds = time.perf_counter() - self._fit

    return _StepTimes()


def stage_train(job):
    from data_setup import load_dataset
    from s3f_kit import experiments as s3f_experiments

    exp = s3f_experiments.EXPERIMENTS[job["model"]]
    data = load_dataset(exp.dataset, job["root"], img_size=_size(job), cache_dir=job["cache"])
    model = _model(job["model"], data)
    train = data.tf_dataset("train", s3f_experiments.BATCH_SIZE, shuffle=True).repeat()
    weights = data.class_weights()
    start = time.perf_counter()
    model.fit(train, steps_per_epoch=1, epochs=1, class_weight=weights, verbose=0)  # trace
    warmup = time.perf_counter() - start
    steps = StepTimes()
    model.fit(train, steps_per_epoch=job["steps"], epochs=1, class_weight=weights, verbose=0,
              callbacks=[steps])  # fmt: skip
    from s3f_kit.run.training import save_finished_model

    # as a run saves: the checkpoint while training (with Adam's state), then the finished file
    checkpoint, finished = Path(job["out"]) / "checkpoint.keras", Path(job["out"]) / "model.keras"
    start = time.perf_counter()
    model.save(checkpoint)
    checkpoint_mb = folder_mb(checkpoint)
    save_finished_model(model, checkpoint, finished)
    return {
        "seconds": float(np.median(steps.seconds)),
        "step_s": steps.seconds,
        "fit_s": steps.fit_seconds,
        "warmup_s": warmup,
        "save_s": time.perf_counter() - start,
        "disk_mb": folder_mb(finished),
        "checkpoint_mb": checkpoint_mb,
        "params": int(model.count_params()),
        "img_size": list(data.image_size),
    }


def stage_evaluate(job):
    from data_setup import load_dataset
    from s3f_kit.run import evaluation as s3f_evaluation

    data = load_dataset(job["dataset"], job["root"], img_size=_size(job), cache_dir=job["cache"])
    model = _model(job["model"], data)
    out = Path(job["out"])
    result = s3f_evaluation.evaluate_model(model, data, out, job["model"])
    return {"disk_mb": folder_mb(out), "test_images": sum(map(sum, result["confusion_matrix"]))}


def stage_results(job):
    from s3f_kit.reports import results as s3f_results

    s3f_results.build_results(job["runs"], job["out"])
    return {"disk_mb": folder_mb(job["runs"]) + folder_mb(job["out"])}


def peak_rss_mb() -> tuple[float, str]:
    """This process's peak RSS. Linux: VmHWM, the high-water mark of this program's own memory
    (ru_maxrss carries the forking parent's RSS across exec, a floor under every stage)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "VmHWM"
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss"


def child(job: dict) -> None:
    """Run one stage; the last stdout line is its JSON record."""
    if job["stage"] in ("train", "evaluate"):
        import keras  # noqa: F401  (imports are not the stage: keep them out of its time)
        import tensorflow  # noqa: F401
    if job["stage"] in ("evaluate", "results"):
        import matplotlib

        matplotlib.use("Agg")
        from s3f_kit.reports import results as s3f_results  # noqa: F401
    import data_setup.audit  # noqa: F401
    import data_setup.loading  # noqa: F401

    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the stage's own output is not the record
        record = globals()[f"stage_{job['stage']}"](job)
    record.setdefault("seconds", time.perf_counter() - start)
    record["peak_rss_mb"], record["rss_method"] = peak_rss_mb()
    print(json.dumps(record))


def run_stage(job: dict, log: Path) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", S3F_CACHE_DIR=str(job["cache"]))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    with open(log, "a") as errors:
        errors.write(f"\n### {json.dumps(job)}\n")
        errors.flush()
        done = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(job)],
            stdout=subprocess.PIPE, stderr=errors, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        tail = log.read_text().splitlines()[-15:]
        raise RuntimeError(f"stage {job['stage']} failed (log {log}):\n" + "\n".join(tail))
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- datasets


def subset_tree(dataset, files, full_base, target_root, counts):
    """A hard-linked copy of the first `counts` images per split and class of a full tree."""
    from data_setup.synth import dataset_base, write_index

    chosen = [f for f in files if f.index < counts[f.split][f.label]]
    base = dataset_base(dataset, target_root)
    for file in chosen:
        for rel in (file.path, *file.masks):
            (base / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(full_base / rel, base / rel)
    write_index(dataset, base, chosen)
    return len(chosen)


def sizes_for(full: int, sizes: list[str]) -> list[int]:
    """The n values (images in all) to measure: those given below `full`, then full; at least
    three, adding full/4 and full/2 when the list leaves fewer."""
    chosen = sorted({int(s) for s in sizes if s != "full" and 0 < int(s) < full})
    if "full" in sizes or not chosen:
        chosen.append(full)
    if len(chosen) < 3:
        chosen = sorted({full // 4, full // 2, *chosen})
    return chosen


def fabricate_runs(runs_dir: Path, seeds: int, test_support=None) -> int:
    """Run folders of the twelve experiments × `seeds`, written with the kit's writers:
    predictions.csv of a test split of the real size and a metrics.json per run."""
    import s3f_common
    from s3f_kit import config as s3f_config
    from s3f_kit import experiments as s3f_experiments
    from s3f_kit.run import evaluation as s3f_evaluation

    count = 0
    for name, exp in s3f_experiments.EXPERIMENTS.items():
        support = (test_support or s3f_experiments.PAPER_TEST_SUPPORT)[exp.dataset]
        labels = np.repeat(np.arange(len(support)), support)
        classes = list(exp.info.class_names)
        binary = s3f_common.is_binary(len(classes))
        for seed in range(42, 42 + seeds):
            rng = np.random.default_rng([seed, count])
            right = rng.random(len(labels)) < 0.85
            guess = np.where(right, labels, (labels + 1) % len(classes))
            if binary:
                probs = np.where(guess == 1, 0.9, 0.1)[:, None]
            else:
                probs = np.full((len(labels), len(classes)), 0.05 / (len(classes) - 1))
                probs[np.arange(len(labels)), guess] = 0.95
            settings = {"protocol": "paper", "seed": seed}
            folder = runs_dir / s3f_config.run_subdir(name, settings)
            folder.mkdir(parents=True, exist_ok=True)
            files = [f"test/{classes[y]}/img{i:05d}.png" for i, y in enumerate(labels)]
            s3f_evaluation.write_predictions(
                folder / "predictions.csv", files, labels, probs, classes
            )
            metrics = s3f_evaluation.test_metrics_for(labels, probs, 0.4, classes, binary)
            metrics.update(experiment=name, dataset=exp.dataset, class_names=classes,
                           params=exp.params, protocol="paper", seed=seed, variant="",
                           architecture=exp.architecture, fusion=exp.fusion,
                           spectranet=exp.spectranet, demo_data=True, wall_time_s=60.0,
                           run_settings={"seed": seed, "protocol": "paper"})  # fmt: skip
            s3f_evaluation.write_metrics(folder, metrics)
            count += 1
    return count


# --------------------------------------------------------------------------- the rehearsal


class Rehearsal:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.log = work / "stages.log"
        self.rows: list[dict] = []
        self.generated: dict[str, dict] = {}
        self.includes = read_includes(args)
        self.on_row = lambda: None

    def record(self, dataset, stage, n, job=None, **fields):
        row = {"dataset": dataset, "stage": stage, "n": n, **fields}
        if job is not None:
            print(f"  {dataset:9s} {stage:24s} n={n:<6d} …", end="", flush=True)
            row.update(run_stage(job, self.log))
            print(f" {row['seconds']:8.2f} s  {row['peak_rss_mb']:7.0f} MB", flush=True)
        self.rows.append(row)
        self.on_row()
        return row

    def dataset(self, dataset: str):
        from data_setup.synth import REAL_COUNTS, scaled_counts, synth_full_size

        args = self.args
        total = args.total.get(dataset, args.total.get("*"))
        counts = (
            scaled_counts(dataset, total)
            if total
            else {split: list(c) for split, c in REAL_COUNTS[dataset].items()}
        )
        full_root = self.work / "data" / dataset / "full"
        start = time.perf_counter()
        base, files = synth_full_size(dataset, full_root, counts, workers=args.workers)
        full_n = len(files)
        self.generated[dataset] = {
            "images": full_n,
            "seconds": round(time.perf_counter() - start, 1),
            "disk_mb": round(folder_mb(full_root), 1),
        }
        print(f"{dataset}: wrote {full_n} images ({self.generated[dataset]['disk_mb']:.0f} MB) "
              f"in {self.generated[dataset]['seconds']:.0f} s", flush=True)  # fmt: skip
        stages = [s for s in ("check", "decode", "reload", "audit", "shortcuts", "holdout",
                              "evaluate") if s in args.stages]  # fmt: skip
        for n in sizes_for(full_n, args.sizes):
            tag = "full" if n == full_n else f"n{n}"
            root, cache = self.work / "data" / dataset / tag, self.work / "cache" / dataset / tag
            if n != full_n:
                n = subset_tree(dataset, files, base, root, scaled_counts(dataset, n))
            for stage in stages:
                out = self.work / "out" / dataset / tag / stage
                out.mkdir(parents=True, exist_ok=True)
                if stage in PAIRWISE and args.pairwise_max and n > args.pairwise_max:
                    self.record(
                        dataset, stage, n, skipped=f"n > --pairwise-max {args.pairwise_max}"
                    )
                    continue
                job = {"stage": stage, "dataset": dataset, "root": str(root), "cache": str(cache),
                       "out": str(out), "img_size": args.img_size,
                       "model": f"Spatial_{dataset}"}  # fmt: skip
                self.record(dataset, stage, n, job)
            if tag != "full" and not args.keep:
                shutil.rmtree(root, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
        if "train" in args.stages:
            from s3f_kit import experiments as s3f_experiments

            train_n = sum(sum(c) for split, c in counts.items() if split != "test")
            if dataset == "BUSI":  # one split of its own: 80 % trains
                train_n = round(train_n * (1 - s3f_experiments.DATASETS[dataset].test_fraction))
            for name in args.models:
                if s3f_experiments.EXPERIMENTS[name].dataset != dataset:
                    continue
                out = self.work / "out" / dataset / "train" / name
                out.mkdir(parents=True, exist_ok=True)
                job = {"stage": "train", "model": name, "root": str(full_root),
                       "cache": str(self.work / "cache" / dataset / "full"), "out": str(out),
                       "img_size": args.img_size, "steps": args.train_steps}  # fmt: skip
                self.record(dataset, f"train {name}", train_n, job)
                if not args.keep:
                    shutil.rmtree(out, ignore_errors=True)  # a BUSI model.keras is ~1.6 GB

    def results(self):
        for seeds in self.args.seeds:
            runs, out = self.work / "runs" / f"seeds{seeds}", self.work / "out" / f"results{seeds}"
            n = fabricate_runs(runs, seeds)
            job = {"stage": "results", "runs": str(runs), "out": str(out),
                   "cache": str(self.work / "cache")}  # fmt: skip
            self.record("all", "results", n, job)


def exponents(rows) -> dict[tuple[str, str], float | None]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if not row["stage"].startswith("train") and "seconds" in row:
            groups.setdefault((row["dataset"], row["stage"]), []).append(row)
    return {
        key: growth_exponent([r["n"] for r in group], [r["seconds"] for r in group])
        for key, group in groups.items()
    }


def targets(rows, fitted, img_size) -> list[dict]:
    checks = []
    for (dataset, stage), exponent in fitted.items():
        if exponent is not None:
            checks.append({"target": f"{dataset} {stage}: growth exponent ≤ {LINEAR_EXPONENT}",
                           "value": round(exponent, 2),
                           "pass": exponent <= LINEAR_EXPONENT})  # fmt: skip
    data_rows = [r for r in rows if r["dataset"] == RSS_DATASET and r["stage"] in DATA_LAYER
                 and "peak_rss_mb" in r]  # fmt: skip
    if data_rows:
        from data_setup.datasets import DATASETS

        largest = max(r["n"] for r in data_rows)
        peak = max(r["peak_rss_mb"] for r in data_rows if r["n"] == largest)
        size = img_size or list(DATASETS[RSS_DATASET].image_size)
        checks.append({"target": f"{RSS_DATASET} data layer peak RSS ≤ {DATA_RSS_MB} MB "
                                 f"(n={largest}, {size[0]}×{size[1]})",
                       "value": round(peak), "pass": peak <= DATA_RSS_MB})  # fmt: skip
    return checks


def _cell(value, digits=2):
    if value is None:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(rows, fitted, checks) -> str:
    lines = ["| dataset | stage | n | wall s | peak RSS MB | disk MB | exponent |",
             "|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    last = {}
    for index, row in enumerate(rows):
        last[(row["dataset"], row["stage"])] = index
    sources = list(dict.fromkeys(r["from"] for r in rows if "from" in r))
    marks = {source: "†" * (k + 1) for k, source in enumerate(sources)}  # †, ††, … per source
    for index, row in enumerate(rows):
        key = (row["dataset"], row["stage"])
        exponent = fitted.get(key) if last[key] == index else None
        if row["stage"].startswith("train"):
            wall = f"{row['seconds']:.2f} s/step" if "seconds" in row else ""
            note = "– (s/step)"
        else:
            wall, note = _cell(row.get("seconds")), _cell(exponent)
        if "skipped" in row:
            wall, note = f"skipped ({row['skipped']})", ""
        stage = row["stage"] + (f" {marks[row['from']]}" if "from" in row else "")
        lines.append(f"| {row['dataset']} | {stage} | {row['n']} | {wall} | "
                     f"{_cell(row.get('peak_rss_mb'), 0)} | {_cell(row.get('disk_mb'), 1)} | "
                     f"{note} |")  # fmt: skip
    for source in sources:
        lines += ["", f"{marks[source]} measured by an earlier run: `{source}`"]
    lines += ["", "| target | value | result |", "|---|---:|---|"]
    lines += [f"| {c['target']} | {c['value']} | {'pass' if c['pass'] else 'FAIL'} |"
              for c in checks]  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    from s3f_kit import experiments as s3f_experiments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small: --total 240, --sizes 60,120,full, 32×32, one Spatial model "
                             "per dataset, results over 1 and 2 seeds")  # fmt: skip
    parser.add_argument("--datasets", default=",".join(s3f_experiments.RECIPES))
    parser.add_argument("--sizes", help="n values (images in all) and/or 'full' "
                                        "(default 1000,2000,4000,full)")  # fmt: skip
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--models", help="experiments to train (default all twelve)")
    parser.add_argument("--total", help="images per dataset instead of the real count: N, or "
                                        "DATASET=N,… for some (e.g. ChestXRay=1000)")  # fmt: skip
    parser.add_argument("--img-size", help="H,W for every stage instead of the paper's")
    parser.add_argument("--train-steps", type=int, default=3, help="timed steps per model")
    parser.add_argument("--seeds", help="seed counts of the results stage (default 1,2,4,5)")
    parser.add_argument("--pairwise-max", type=int, default=0,
                        help="largest n for the audit, holdout and evaluate stages (0: no cap); "
                             "today's audit is quadratic")  # fmt: skip
    parser.add_argument("--workers", type=int, default=4, help="threads writing the images")
    parser.add_argument("--work", help="scratch folder (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--out", default=str(ROOT / "results" / "scale"),
                        help="writes OUT.md and OUT.json (default results/scale)")  # fmt: skip
    parser.add_argument("--include", action="append",
                        help="an earlier run's OUT.json (repeatable): its rows of datasets or "
                             "stages this run does not measure join the table (†)")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    quick = args.quick
    args.datasets = args.datasets.split(",")
    args.stages = args.stages.split(",")
    unknown = set(args.stages) - set(STAGES) | set(args.datasets) - set(s3f_experiments.RECIPES)
    if unknown:
        parser.error(f"unknown stage(s) or dataset(s): {', '.join(sorted(unknown))}")
    args.sizes = (args.sizes or ("60,120,full" if quick else "1000,2000,4000,full")).split(",")
    args.total = _totals(args.total or ("240" if quick else ""), parser)
    size = args.img_size or ("32,32" if quick else None)
    args.img_size = [int(v) for v in size.split(",")] if size else None
    if args.models:
        args.models = args.models.split(",")
    else:
        args.models = (
            [f"Spatial_{d}" for d in args.datasets] if quick else list(s3f_experiments.EXPERIMENTS)
        )
    bad = set(args.models) - set(s3f_experiments.EXPERIMENTS)
    if bad:
        parser.error(f"unknown model(s): {', '.join(sorted(bad))}")
    args.seeds = [int(s) for s in (args.seeds or ("1,2" if quick else "1,2,4,5")).split(",")]
    args.out = Path(str(args.out).removesuffix(".json").removesuffix(".md"))
    return args


def included_rows(earlier: dict, datasets, stages) -> list[dict]:
    """Rows of an earlier report that this run does not measure (another dataset or stage),
    each naming its source (a row that report itself included keeps its own)."""
    rows = []
    for row in earlier["rows"]:
        measured_now = row["dataset"] in (*datasets, "all") and row["stage"].split()[0] in stages
        if not measured_now:
            rows.append({**row, "from": row.get("from") or earlier.get("command", "?")})
    return rows


def read_includes(args) -> dict[Path, dict | None]:
    """The --include reports. One that is this run's own output (`--include results/scale.json`
    with the default --out: re-measure some stages, keep the rest) is read now, before this run
    overwrites it; any other is re-read at each write (it may be another run's, still growing)."""
    own = args.out.with_suffix(".json").resolve()
    return {
        path: json.loads(path.read_text()) if path.resolve() == own and path.is_file() else None
        for path in map(Path, args.include or [])
    }


def write_report(args, rehearsal, started, argv, finished: bool) -> str:
    """The table so far as OUT.md + OUT.json (atomically): a run cut short keeps its rows."""
    from data_setup.files import write_atomic, write_json_atomic

    rows = rehearsal.rows
    for path, earlier in rehearsal.includes.items():
        if earlier is None and path.is_file():  # re-read: it may still be growing
            earlier = json.loads(path.read_text())
        if earlier is not None:
            rows = included_rows(earlier, args.datasets, args.stages) + rows
    fitted = exponents(rows)
    checks = targets(rows, fitted, args.img_size)
    table = markdown(rows, fitted, checks)
    report = {
        "command": " ".join(["python benchmarks/bench_scale.py", *(argv or sys.argv[1:])]),
        "finished": finished,
        "machine": {"cpus": os.cpu_count(), "ram_gb": round(_ram_gb(), 1)},
        "wall_s": round(time.perf_counter() - started, 1),
        "generated": rehearsal.generated,
        "rows": rows,
        "exponents": {f"{d}/{s}": e for (d, s), e in fitted.items()},
        "targets": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out.with_suffix(".json"), report)
    write_atomic(args.out.with_suffix(".md"), table if finished else "(unfinished)\n\n" + table)
    return table


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    parent = Path(args.work) if args.work else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="s3f-bench-scale-", dir=parent))
    print(f"scratch: {work}  (stage logs: {work / 'stages.log'})", flush=True)
    started = time.perf_counter()
    rehearsal = Rehearsal(args, work)
    rehearsal.on_row = lambda: write_report(args, rehearsal, started, argv, finished=False)
    try:
        if "results" in args.stages:  # first: it needs no data
            rehearsal.results()
        for dataset in args.datasets:
            rehearsal.dataset(dataset)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    table = write_report(args, rehearsal, started, argv, finished=True)
    print("\n" + table)
    minutes = (time.perf_counter() - started) / 60
    print(f"wrote {args.out}.md and {args.out}.json ({minutes:.1f} min)")
    return 0


def _totals(text: str, parser) -> dict[str, int]:
    """'240' → {'*': 240}; 'ChestXRay=1000,BRISC2025=2000' → per dataset."""
    totals = {}
    for part in filter(None, text.split(",")):
        name, _, value = part.rpartition("=")
        try:
            totals[name or "*"] = int(value)
        except ValueError:
            parser.error(f"--total: expected N or DATASET=N, got {part!r}")
    return totals


def _ram_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


if __name__ == "__main__":
    sys.exit(main())
