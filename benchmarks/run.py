"""Side-by-side benchmarks of gomp against the stdlib (and peers).

    python benchmarks/run.py [--repeat N] [--only NAME ...] [--json FILE]
                             [--from-json FILE] [--markdown FILE] [--plot FILE.svg]

Every area has a module ``benchmarks/bench_<area>.py`` with a function
``cases()`` returning :class:`Case` objects. A case has rows (gomp, the
stdlib's start methods, peers such as loky, mpire, faster-fifo), each a
callable that performs one measurement and returns it. The runner
interleaves the rows (round-robin, so drift hits all of them alike),
repeats each ``--repeat`` times, and prints medians and the ratio to the
case's baseline row. Cases that share a ``table`` (one parameter swept)
print as one table. A row whose peer is not installed, or that fails, is
reported as such and the others go on.

``--json`` saves the results; ``--from-json`` reads them back instead of
measuring, so the console report, ``--markdown`` and ``--plot`` can all be
made from one run.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))

# the order areas print in (whole programs first); others follow by name
AREAS = ["programs", "process", "pool", "futures", "queues", "connection", "sync",
         "managers", "scaling"]
STDLIB = ["stdlib fork", "stdlib forkserver", "stdlib spawn"]


@dataclass
class Case:
    name: str
    unit: str                      # what one measurement is in: "ms", "µs", "msg/s", ...
    rows: Dict[str, Callable[[], float]]
    baseline: str                  # the row the ratios compare against
    higher_is_better: bool = False
    goal: Optional[str] = None     # the target, as the issue states it
    skipped: Dict[str, str] = field(default_factory=dict)  # row -> why it did not run
    table: Optional[str] = None    # cases sharing this title print as one table...
    param: Optional[str] = None    # ...with this case as the line for this value
    context: Tuple[str, ...] = ()  # rows shown for scale only (no ratio, not charted)
    repeat: Optional[int] = None   # at most this many repeats (a slow case)
    teardown: Optional[Callable[[], None]] = None  # frees what the rows made; always run


def warmed(fn: Callable[[], float]) -> Callable[[], float]:
    """fn, run once untimed before its first measurement: starting a fork
    server or a zygote, or filling caches, is paid once by a program, not per
    call."""
    done = []

    def run() -> float:
        if not done:
            fn()
            done.append(True)
        return fn()
    return run


def discover(only: List[str]) -> List[Case]:
    sys.path.insert(0, HERE)
    names = [f[6:-3] for f in os.listdir(HERE) if f.startswith("bench_") and f.endswith(".py")]
    names.sort(key=lambda a: (AREAS.index(a) if a in AREAS else len(AREAS), a))
    cases: List[Case] = []
    for area in names:
        fname = f"bench_{area}.py"
        mod = importlib.import_module(fname[:-3])
        for case in mod.cases():
            if not only or any(o in case.name or o in fname or o in (case.table or "")
                               for o in only):
                cases.append(case)
    return cases


def measure(case: Case, repeat: int) -> Dict[str, Any]:
    """Run the rows round-robin; a row that raises is dropped from then on."""
    results: Dict[str, List[float]] = {name: [] for name in case.rows}
    skipped = dict(case.skipped)
    try:
        for _ in range(min(repeat, case.repeat or repeat)):
            for name, fn in case.rows.items():
                if name in skipped:
                    continue
                try:
                    results[name].append(fn())
                except Exception as e:
                    traceback.print_exc()
                    skipped[name] = f"failed: {type(e).__name__}: {e}"
                    del results[name]
    finally:
        if case.teardown is not None:
            case.teardown()
    return {"case": case.name, "unit": case.unit, "higher_is_better": case.higher_is_better,
            "baseline": case.baseline, "goal": case.goal, "table": case.table,
            "param": case.param, "context": list(case.context),
            "medians": {k: statistics.median(v) for k, v in results.items()},
            "min": {k: min(v) for k, v in results.items()},
            "max": {k: max(v) for k, v in results.items()},
            "skipped": skipped}


def speedup(rec: Dict[str, Any], base: Optional[float], value: Optional[float]) -> Optional[float]:
    """How many times better value is than base (>1 is better)."""
    if not base or not value:
        return None
    return value / base if rec["higher_is_better"] else base / value


def gomp_row(rec: Dict[str, Any]) -> Optional[str]:
    """The row that stands for gomp: "gomp", else the first gomp row."""
    names = [k for k in rec["medians"] if k.startswith("gomp")]
    return "gomp" if "gomp" in names else (names[0] if names else None)


def rivals(rec: Dict[str, Any]) -> List[str]:
    """Rows gomp is compared with: every measured non-gomp, non-context row."""
    return [k for k in rec["medians"] if not k.startswith("gomp") and k not in rec["context"]]


def fmt(v: Optional[float]) -> str:
    """Three significant digits; k, M, G past 10 000."""
    if v is None:
        return "-"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= max(div, 1e4):
            return f"{v / div:.3g}{suffix}"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def ratio(r: Optional[float]) -> str:
    return "-" if r is None else f"{r:.2f}x"


# -- the console report ------------------------------------------------------

def print_case(rec: Dict[str, Any]) -> None:
    med = rec["medians"]
    base = med.get(rec["baseline"])
    goal = f"   goal: {rec['goal']}" if rec["goal"] else ""
    print(f"\n## {rec['case']} [{rec['unit']}, "
          f"{'higher' if rec['higher_is_better'] else 'lower'} is better]{goal}")
    width = max(len(k) for k in list(med) + list(rec["skipped"]))
    for name, value in med.items():
        spread = f"(min {fmt(rec['min'][name])}, max {fmt(rec['max'][name])})"
        mark = ("baseline" if name == rec["baseline"] else "context" if name in rec["context"]
                else ratio(speedup(rec, base, value)))
        print(f"  {name:<{width}}  {fmt(value):>8} {rec['unit']:<6} {mark:>9}  {spread}")
    for name, why in rec["skipped"].items():
        print(f"  {name:<{width}}  {'-':>8} {'':<6} {'':>9}  ({why})")


def print_table(recs: List[Dict[str, Any]]) -> None:
    first = recs[0]
    cols: List[str] = []
    for rec in recs:
        cols += [k for k in list(rec["medians"]) + list(rec["skipped"]) if k not in cols]
    print(f"\n## {first['table']} [{first['unit']}, "
          f"{'higher' if first['higher_is_better'] else 'lower'} is better]")
    head = [""] + cols + ["gomp / best stdlib"]
    lines = []
    for rec in recs:
        med = rec["medians"]
        std = [med[k] for k in STDLIB if k in med]
        best = (max if rec["higher_is_better"] else min)(std) if std else None
        g = gomp_row(rec)
        lines.append([rec["param"]] + [fmt(med.get(k)) for k in cols]
                     + [ratio(speedup(rec, best, med.get(g) if g else None))])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    for line in [head] + lines:
        print("  " + "  ".join(f"{str(x):>{w}}" for x, w in zip(line, widths)))
    for rec in recs:
        for name, why in rec["skipped"].items():
            if why.startswith("failed"):
                print(f"  {rec['param']}, {name}: {why}")
    notes = {f"{k}: {why}" for rec in recs for k, why in rec["skipped"].items()
             if not why.startswith("failed")}
    for note in sorted(notes):
        print(f"  ({note})")


def report(records: List[Dict[str, Any]]):
    """Print records as they come: a table once its last case is in."""
    pending: List[Dict[str, Any]] = []

    def flush() -> None:
        if pending:
            print_table(pending)
            pending.clear()

    def add(rec: Optional[Dict[str, Any]]) -> None:
        if rec is None or not pending or rec["table"] != pending[0]["table"]:
            flush()
        if rec is None:
            return
        if rec["table"]:
            pending.append(rec)
        else:
            print_case(rec)
        sys.stdout.flush()
    return add


# -- markdown and the chart --------------------------------------------------

def label(rec: Dict[str, Any]) -> str:
    return f"{rec['table']}: {rec['param']}" if rec["table"] else rec["case"]


def write_markdown(records: List[Dict[str, Any]], machine: Dict[str, Any], path: str) -> None:
    lines = [f"{machine['cpus']} cpus, Python {machine['python']}, median of "
             f"{machine['repeat']} runs; \"×\" = how many times better gomp is.", "",
             "| case | unit | gomp | stdlib fork | stdlib forkserver | stdlib spawn "
             "| × fork | × forkserver | × spawn | others |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rec in records:
        med, g = rec["medians"], gomp_row(rec)
        gv = med.get(g) if g else None
        cells = [label(rec), rec["unit"] + (" ↑" if rec["higher_is_better"] else " ↓"), fmt(gv)]
        cells += [fmt(med.get(k)) for k in STDLIB]
        cells += [ratio(speedup(rec, med.get(k), gv)) for k in STDLIB]
        others = [f"{k} {fmt(v)}" + ("" if k in rec["context"] or k.startswith("gomp")
                                     else f" ({ratio(speedup(rec, v, gv))})")
                  for k, v in med.items() if k != g and k not in STDLIB]
        cells.append("; ".join(others) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "↑ higher is better, ↓ lower is better."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(records: List[Dict[str, Any]], machine: Dict[str, Any], path: str) -> None:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("--plot needs matplotlib: pip install "
                          "'gomp-multiprocessing[bench]'") from e
    matplotlib.use("Agg")
    # text as text, not glyph outlines: a chart of a few dozen kilobytes
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    groups = []  # (label, [(rival, speedup)])
    for rec in records:
        g = gomp_row(rec)
        if g is None:
            continue
        bars = [(k, speedup(rec, rec["medians"][k], rec["medians"][g])) for k in rivals(rec)]
        if bars:
            groups.append((label(rec), bars))
    names = []
    for _, bars in groups:
        names += [k for k, _ in bars if k not in names]
    order = [k for k in STDLIB if k in names] + sorted(k for k in names if k not in STDLIB)
    palette = plt.get_cmap("tab20").colors  # more rivals than tab10 has colours
    colors = {k: palette[i % len(palette)] for i, k in enumerate(order)}

    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.18 * sum(len(b) + 1 for _, b in groups)))
    y, ticks, shown = 0.0, [], set()
    for name, bars in groups:
        bars.sort(key=lambda kb: order.index(kb[0]))
        top = y
        for k, s in bars:
            # from the 1x line: right when gomp is better, left when worse
            ax.barh(y, s - 1, left=1, height=0.8, color=colors[k],
                    label=None if k in shown else k)
            ax.text(s, y, f" {s:.3g}x ", va="center",
                    ha="left" if s >= 1 else "right", fontsize=6)
            shown.add(k)
            y += 1
        ticks.append(((top + y - 1) / 2, name))
        y += 1  # a gap between groups
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=1)
    every = [s for _, bars in groups for _, s in bars]
    lo, hi = min(min(every) / 1.6, 0.5), max(max(every) * 1.6, 2)
    ax.set_xlim(lo, hi)
    ticks_x = [m * 10.0 ** e for e in range(-3, 4) for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
    ax.set_xticks(ticks_x, [f"{t:g}x" for t in ticks_x])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks([t for t, _ in ticks], [n for _, n in ticks], fontsize=7)
    ax.invert_yaxis()
    ax.set_ylim(y - 0.5, -1)
    ax.set_xlabel("times better than the other row (log scale; right of the 1x line: gomp wins)")
    ax.set_title(f"gomp against the stdlib's start methods and peers\n"
                 f"{machine['cpus']} cpus, Python {machine['python']}, "
                 f"median of {machine['repeat']}", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=[],
                    help="cases whose name, table or bench_<area>.py contains one of these")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--from-json", help="report the results saved by --json; measure nothing")
    ap.add_argument("--markdown", help="also write the results as a markdown table here")
    ap.add_argument("--plot", help="also draw the speedups (an .svg or .png) here")
    args = ap.parse_args()

    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        machine = saved["machine"]
        records = [r for r in saved["cases"] if not args.only
                   or any(o in r["case"] or o in (r["table"] or "") for o in args.only)]
    else:
        machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
                   "machine": platform.platform(), "repeat": args.repeat}
        records = []
    print(f"python {machine['python']}, {machine['cpus']} cpus, repeat={machine['repeat']} "
          "(median of the repeats; ratio = times better than the baseline row)")
    add = report(records)
    if args.from_json:
        for rec in records:
            add(rec)
    else:
        for case in discover(args.only):
            rec = measure(case, args.repeat)
            records.append(rec)
            add(rec)
    add(None)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "cases": records}, f, indent=1, ensure_ascii=False)
    if args.markdown:
        write_markdown(records, machine, args.markdown)
    if args.plot:
        plot(records, machine, args.plot)


if __name__ == "__main__":
    main()
