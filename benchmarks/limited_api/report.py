"""The medians of bench.py's results, per case: one row per Python, one
column per variant, each cell the median and its ratio to the normal build
in the same interpreter (x1.00: the same; above: slower).

    python report.py RESULTS.jsonl [...]
"""
import collections
import json
import sys

from bench import VARIANTS


def main():
    rows = []
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            rows += [json.loads(line) for line in f if line.strip()]
    median = collections.defaultdict(dict)
    for r in rows:
        median[r["case"]][r["python"], r["variant"]] = r["median"]
    pythons = sorted({r["python"] for r in rows}, key=lambda v: tuple(map(int, v.split("."))))
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    for case in sorted(median):
        print("\n" + case)
        print("  Python" + "".join("%15s" % v for v in variants))
        for py in pythons:
            normal = median[case].get((py, "normal"))
            cells = []
            for v in variants:
                t = median[case].get((py, v))
                if t is None:
                    cells.append("%15s" % "-")
                elif v == "normal" or normal is None:
                    cells.append("%15.1f" % t)
                else:
                    ratio = t / normal
                    ratio_text = "%.2f" % ratio if ratio < 10 else "%.0f" % ratio
                    cells.append("%15s" % ("%.1f x%s" % (t, ratio_text)))
            print("  %-6s" % py + "".join(cells))


if __name__ == "__main__":
    main()
