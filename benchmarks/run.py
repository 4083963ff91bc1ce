"""Side-by-side benchmarks of gomp against the stdlib (and peers).

    python benchmarks/run.py [--repeat N] [--only NAME ...] [--json FILE]

Every area has a module ``benchmarks/bench_<area>.py`` with a function
``cases()`` returning :class:`Case` objects. A case has rows (gomp, the
stdlib's start methods, peers such as faster-fifo), each a callable that
performs one measurement and returns it. The runner interleaves the rows
(round-robin, so drift hits all of them alike), repeats each ``--repeat``
times, and prints medians and the ratio to the case's baseline row in one
table. A row whose peer is not installed is reported as such.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Case:
    name: str
    unit: str                      # what one measurement is in: "ms", "µs", "msg/s", ...
    rows: Dict[str, Callable[[], float]]
    baseline: str                  # the row the ratios compare against
    higher_is_better: bool = False
    goal: Optional[str] = None     # the target, as the issue states it
    skipped: Dict[str, str] = field(default_factory=dict)  # row -> why it did not run


def discover(only: List[str]) -> List[Case]:
    sys.path.insert(0, HERE)
    cases: List[Case] = []
    for fname in sorted(os.listdir(HERE)):
        if fname.startswith("bench_") and fname.endswith(".py"):
            mod = importlib.import_module(fname[:-3])
            for case in mod.cases():
                if not only or any(o in case.name or o in fname for o in only):
                    cases.append(case)
    return cases


def measure(case: Case, repeat: int) -> Dict[str, List[float]]:
    results: Dict[str, List[float]] = {name: [] for name in case.rows}
    for _ in range(repeat):
        for name, fn in case.rows.items():
            results[name].append(fn())
    return results


def speedup(case: Case, base: float, value: float) -> float:
    """How many times better than the baseline (>1 is better)."""
    if case.higher_is_better:
        return value / base
    return base / value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--json", help="also write the medians here")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, repeat={args.repeat} "
          "(median of the repeats; ratio = times better than the baseline row)")
    report = []
    for case in discover(args.only):
        res = measure(case, args.repeat)
        med = {k: statistics.median(v) for k, v in res.items()}
        base = med[case.baseline]
        print()
        goal = f"   goal: {case.goal}" if case.goal else ""
        print(f"## {case.name} [{case.unit}, {'higher' if case.higher_is_better else 'lower'}"
              f" is better]{goal}")
        width = max(len(k) for k in list(med) + list(case.skipped))
        for name, value in med.items():
            spread = f"(min {min(res[name]):.4g}, max {max(res[name]):.4g})"
            mark = "baseline" if name == case.baseline else f"{speedup(case, base, value):6.2f}x"
            print(f"  {name:<{width}}  {value:12.4g} {case.unit:<6} {mark:>9}  {spread}")
        for name, why in case.skipped.items():
            print(f"  {name:<{width}}  {'-':>12} {'':<6} {'':>9}  ({why})")
        report.append({"case": case.name, "unit": case.unit, "medians": med,
                       "baseline": case.baseline, "higher_is_better": case.higher_is_better})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
