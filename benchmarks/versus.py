"""Warm ``simulate`` of this checkout against another one: ``python -m benchmarks.versus BASE``.

``BASE`` is the root of a second checkout of the project (e.g. ``git worktree add
/tmp/base <commit>``).  For each case and dtype the two trees' workers
(``benchmarks/worker.py``, mode ``forward``, one CPU device) run as separate
processes, alternating, ``--rounds`` times; every timed call of both sides is
pooled and the ratios this/base of the minima and of the medians are printed
(and written as JSON with ``--out``).  Alternating processes keeps a drifting
load on a shared machine from favouring one side; the minimum is the figure
least affected by other work.  Used to check that a refactor keeps the warm
render time (issue: "warm simulate within 5 % of today's").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from . import cases
from .runner import REPO, _result_line, run_process

CASES = {"canonical_1024": cases.canonical(1024), "heavy_256": cases.heavy(256)}


def _one(tree: Path, flags: list[str], dtype: str, repeats: int) -> list[float]:
    spec = dict(group="versus", case="-", flags=flags, impl="jax", mode="forward", dtype=dtype,
                repeats=repeats, extra={})
    env = dict(os.environ, PYTHONPATH=str(tree))  # that tree's package only
    res = run_process([sys.executable, "-m", "benchmarks.worker", json.dumps(spec)], env=env, cwd=str(tree))
    rec = _result_line(res["stdout"])
    if not rec or "times_s" not in rec:
        raise RuntimeError(f"{tree}: worker failed: {rec or res['stderr'][-2000:]}")
    return rec["times_s"]


def compare(base: Path, rounds: int = 3, repeats: int = 10, dtypes=("float64", "float32")) -> list[dict]:
    rows = []
    for name, flags in CASES.items():
        for dtype in dtypes:
            times: dict[str, list[float]] = {"base": [], "this": []}
            for r in range(rounds):
                order = (("base", base), ("this", REPO)) if r % 2 == 0 else (("this", REPO), ("base", base))
                for side, tree in order:
                    times[side] += _one(tree, flags, dtype, repeats)
            b, t = times["base"], times["this"]
            row = dict(case=name, dtype=dtype, base_min_s=min(b), this_min_s=min(t),
                       base_median_s=statistics.median(b), this_median_s=statistics.median(t),
                       ratio_min=min(t) / min(b), ratio_median=statistics.median(t) / statistics.median(b),
                       calls_per_side=len(b))
            rows.append(row)
            print(f"{name:15s} {dtype}: base {row['base_min_s'] * 1e3:8.2f} ms  this "
                  f"{row['this_min_s'] * 1e3:8.2f} ms  ratio(min) {row['ratio_min']:.3f}  "
                  f"ratio(median) {row['ratio_median']:.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.versus", description=__doc__)
    p.add_argument("base", type=Path, help="root of the checkout to compare against")
    p.add_argument("--rounds", type=int, default=3, help="processes per side and case")
    p.add_argument("--repeats", type=int, default=10, help="timed calls per process")
    p.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = p.parse_args(argv)
    if not (args.base / "benchmarks" / "worker.py").is_file():
        p.error(f"{args.base}: not a checkout of this project (no benchmarks/worker.py)")
    rows = compare(args.base.resolve(), args.rounds, args.repeats)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
