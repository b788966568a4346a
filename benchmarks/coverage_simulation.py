"""How often does the kit's interval of the mean over seeds cover the truth? A seeded simulation
of the two-level bootstrap (s3f_stats.two_level_bootstrap: seeds × one shared stratified
resample of the test images) at k ∈ {3, 5, 10} seeds and n ∈ {156, 624, 1,000, 1,512} test
images, beside the t-interval over seed means that the kit printed before (issue 32).

    python benchmarks/coverage_simulation.py            # rewrites the table in docs/statistics.md
    python benchmarks/coverage_simulation.py --studies 1000 --print-only

The model of a study: each test image i has a difficulty d_i ~ N(0, σ_d) drawn from a population
of images, each seed s an ability a_s ~ N(μ, τ) drawn from the training procedure's spread, and
seed s classifies image i correctly with probability sigmoid(a_s − d_i); the same images are
tested by every seed (so the seeds' errors are correlated, as on a fixed test split). What the
interval should cover is the procedure's expected accuracy on the image population,
θ = E[sigmoid(a − d)] (a one-dimensional Gauss–Hermite integral). Each cell runs `--studies`
independent studies and counts the intervals that hold θ; its Monte Carlo standard error is
√(0.95 · 0.05 / studies) (1.5 points at the default 200). Everything is seeded: the same command
gives the same table. The default takes a few minutes on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_setup.files import write_atomic  # noqa: E402
from s3f_kit.reports import stats as s3f_stats  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "statistics.md"
START, END = "<!-- coverage-simulation:start -->", "<!-- coverage-simulation:end -->"
SEEDS = (3, 5, 10)
IMAGES = (156, 624, 1000, 1512)  # BUSI's and BRISC2025's test sets, Chest X-Ray's, HAM10000's
# (name, μ, τ, σ_d): accuracy ≈ 0.85 with a seed-to-seed sd of ≈ 1.5 points (a stable model) or
# ≈ 6 points (one whose seeds disagree, as on the small demo sets)
SCENARIOS = (("stable seeds", 2.4, 0.15, 1.5), ("unstable seeds", 2.4, 0.6, 1.5))


def truth(mu: float, tau: float, sigma_d: float) -> float:
    """θ = E[sigmoid(Z)], Z ~ N(μ, √(τ² + σ_d²)): a − d is normal."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    z = mu + np.hypot(tau, sigma_d) * nodes
    return float(np.sum(weights / (1 + np.exp(-z))) / np.sqrt(2 * np.pi))


def _accuracy(item, weights):
    return s3f_stats.metrics_of(item.labels, item.predicted, None, weights, ("accuracy",))[
        "accuracy"
    ][:, None]


def one_study(rng, k, n, mu, tau, sigma_d, resamples, seed) -> dict:
    """(covered by the two-level interval, by the t-interval, t-interval outside [0, 1])."""
    difficulty = rng.normal(0, sigma_d, n)
    ability = rng.normal(mu, tau, k)
    labels = np.arange(n) % 2
    files = np.array([f"{i}.png" for i in range(n)])
    units, means = [], []
    for a in ability:
        right = rng.random(n) < 1 / (1 + np.exp(-(a - difficulty)))
        predicted = np.where(right, labels, 1 - labels)
        units.append([s3f_stats.Predictions(files, labels, predicted)])
        means.append(right.mean())
    drawn = s3f_stats.two_level_bootstrap(units, _accuracy, lambda item: item, resamples, seed)
    low, high = s3f_stats.percentile_interval(drawn[:, 0])
    spread = stats.sem(means)  # 0 when every seed scored the same: scipy's interval is NaN
    t_low, t_high = (
        stats.t.interval(s3f_stats.CONFIDENCE, k - 1, loc=np.mean(means), scale=spread)
        if spread > 0
        else (np.mean(means), np.mean(means))
    )
    return {"interval": (low, high), "t": (t_low, t_high)}


def simulate(studies: int, resamples: int, seed: int) -> list[dict]:
    rows = []
    for scenario, mu, tau, sigma_d in SCENARIOS:
        theta = truth(mu, tau, sigma_d)
        for k in SEEDS:
            for n in IMAGES:
                rng = np.random.default_rng([seed, k, n, int(tau * 100)])
                covered = t_covered = outside = 0
                widths = []
                for study in range(studies):
                    found = one_study(rng, k, n, mu, tau, sigma_d, resamples, seed + study)
                    low, high = found["interval"]
                    covered += low <= theta <= high
                    widths.append(high - low)
                    t_low, t_high = found["t"]
                    t_covered += t_low <= theta <= t_high
                    outside += t_low < 0 or t_high > 1
                rows.append(
                    {
                        "scenario": scenario,
                        "theta": theta,
                        "k": k,
                        "n": n,
                        "coverage": covered / studies,
                        "width": float(np.mean(widths)),
                        "t_coverage": t_covered / studies,
                        "t_outside": outside / studies,
                    }
                )
    return rows


def table(rows: list[dict], studies: int, resamples: int, seed: int, seconds: float) -> str:
    command = (
        "python benchmarks/coverage_simulation.py"
        + (f" --studies {studies}" if studies != DEFAULT_STUDIES else "")
        + (f" --resamples {resamples}" if resamples != DEFAULT_RESAMPLES else "")
        + (f" --seed {seed}" if seed != DEFAULT_SEED else "")
    )
    error = 100 * np.sqrt(0.95 * 0.05 / studies)
    lines = [
        START,
        f"Made by `{command}` ({studies} studies per cell, {resamples} bootstrap resamples each, "
        f"seed {seed}; {seconds / 60:.1f} min). Coverage of the nominal 95 % intervals, in %; "
        f"Monte Carlo standard error ≈ {error:.1f} points. Width: the two-level interval's "
        "mean width in accuracy points. t-interval: the t-interval over seed means the kit "
        "printed before; 'outside': the share of its intervals that leave [0, 100] %.",
        "",
        "| scenario (θ) | seeds k | test images n | two-level bootstrap | width | "
        "t-interval (old) | t outside [0, 100] % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shown = "" if r["k"] >= s3f_stats.MIN_RUNS_FOR_INTERVAL else " (not shown by the kit)"
        lines.append(
            f"| {r['scenario']} ({100 * r['theta']:.1f} %) | {r['k']} | {r['n']:,} | "
            f"{100 * r['coverage']:.1f}{shown} | {100 * r['width']:.2f} | "
            f"{100 * r['t_coverage']:.1f} | {100 * r['t_outside']:.1f} |"
        )
    return "\n".join([*lines, END])


def write_into_docs(text: str, docs: Path = DOCS) -> None:
    """Replace the table between the markers of docs/statistics.md (written atomically)."""
    page = docs.read_text(encoding="utf-8")
    if START not in page or END not in page:
        raise SystemExit(f"{docs}: no {START} … {END} block to write the table into")
    before, rest = page.split(START, 1)
    after = rest.split(END, 1)[1]
    write_atomic(docs, before + text + after)


DEFAULT_STUDIES, DEFAULT_RESAMPLES, DEFAULT_SEED = 200, 1000, 32


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=DEFAULT_STUDIES)
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--print-only", action="store_true", help="do not rewrite the docs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = simulate(args.studies, args.resamples, args.seed)
    text = table(rows, args.studies, args.resamples, args.seed, time.perf_counter() - start)
    print(text)
    if not args.print_only:
        write_into_docs(text)
        print(f"written into {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
