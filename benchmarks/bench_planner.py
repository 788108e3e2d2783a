"""Plan quality and planning time of switchyard.plan.plan_partitions.

For each size, seeded random weights are planned over 8 worker slots; the table
shows the time plan_partitions takes, its makespan over the lower bound
max(total / sum(capacities), largest / max(capacities)), and the same ratio for
plain LPT. Ratios are measured in this run, so they hold on a noisy machine.

    .venv/bin/python benchmarks/bench_planner.py [--max-n 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    from switchyard.plan import lower_bound, lpt, makespan, plan_partitions
except ImportError:  # run from a checkout without an editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from switchyard.plan import lower_bound, lpt, makespan, plan_partitions

SIZES = (10, 100, 1000, 10_000, 100_000, 1_000_000)
WORKERS = 8


def cases(max_n: int, seed: int):
    rng = np.random.default_rng(seed)
    for n in SIZES:
        if n > max_n:
            break
        yield n, "lognormal", rng.lognormal(0.0, 1.0, n).tolist(), [1.0] * WORKERS
    for n in SIZES:
        if n > max_n:
            break
        yield n, "uniform", rng.uniform(1.0, 100.0, n).tolist(), [1.0] * WORKERS
    unequal = [0.5, 1.0, 1.0, 1.5, 2.0, 2.0, 3.0, 4.0]
    for n in (10, 1000, 100_000, 1_000_000):
        if n <= max_n:
            yield n, "lognormal, unequal capacities", rng.lognormal(0.0, 1.0, n).tolist(), unequal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-n", type=int, default=SIZES[-1], help="largest partition count to plan"
    )
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)

    header = (
        f"{'n':>9}  {'weights':<30} {'plan s':>8} {'plan ratio':>12} {'lpt s':>8} {'lpt ratio':>12}"
    )
    print(header)
    print("-" * len(header))
    worst_large = 1.0
    for n, kind, weights, caps in cases(opts.max_n, opts.seed):
        bound = lower_bound(weights, caps)
        start = time.perf_counter()
        planned = plan_partitions(weights, caps)
        plan_s = time.perf_counter() - start
        start = time.perf_counter()
        greedy = lpt(weights, caps)
        lpt_s = time.perf_counter() - start
        plan_ratio = makespan(weights, caps, planned) / bound
        lpt_ratio = makespan(weights, caps, greedy) / bound
        if n >= 1000:
            worst_large = max(worst_large, plan_ratio)
        print(
            f"{n:>9}  {kind:<30} {plan_s:>8.3f} {plan_ratio:>12.7f}"
            f" {lpt_s:>8.3f} {lpt_ratio:>12.7f}"
        )
    print()
    print(f"worst plan ratio for n >= 1000: {worst_large:.6f} (target <= 1.005)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
