#!/usr/bin/env python3
"""Summarise criterion's estimates for the peer bench: a table on stderr, JSON on stdout.

    summarize.py CRITERION_DIR      (normally $CARGO_TARGET_DIR/criterion)
"""
import json
import sys
from pathlib import Path

SCENARIOS = ["static", "fractional", "rule_5_conditions", "missing_flag", "disabled_flag",
             "resolve_all_100"]


def estimates(root, name):
    data = json.loads((root / name / "new" / "estimates.json").read_text())
    return data["median"]["point_estimate"], data["mean"]["point_estimate"]


def main():
    root = Path(sys.argv[1])
    ns = {name: estimates(root, name) for name in SCENARIOS}
    load_median, load_mean = (v / 1e6 for v in estimates(root, "load/load_compile_10k"))
    print("flagd-evaluation-engine 0.1.0 (criterion median, mean in brackets)", file=sys.stderr)
    for name, (median, mean) in ns.items():
        print(f"  {name:<20} {median:>9.0f} ns/op   (mean {mean:.0f})", file=sys.stderr)
    print(f"  {'load_compile_10k':<20} {load_median:>9.1f} ms      (mean {load_mean:.1f})",
          file=sys.stderr)
    print(json.dumps({
        "peer": "flagd-evaluation-engine@0.1.0",
        "resolve_all": "loop over the 100 bulk flags (the crate has no bulk call)",
        "ns_per_op": {name: round(median) for name, (median, _) in ns.items()},
        "load_compile_10k_ms": round(load_median, 1),
    }))


if __name__ == "__main__":
    main()
