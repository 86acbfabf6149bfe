#!/usr/bin/env python3
"""Write the benchmark flag documents (flagd JSON format), deterministically.

    gen_10k.py OUT                 10,000 flags flag-00000 .. flag-09999 (load+compile scenario)
    gen_10k.py --count N OUT       N flags instead
    gen_10k.py --scenarios OUT     regenerate flags.json (named scenario flags + bulk-000 .. bulk-099)

Flag j of a generated set follows bulk_flag(j); see README.md beside this file.
"""
import argparse
import json

FRACTIONAL_BUCKET_BY = {"cat": [{"var": "$flagd.flagKey"}, {"var": "targetingKey"}]}
RULE_COUNTRIES = ["US", "DE", "GB", "FR", "CA", "NL", "SE"]


def bulk_flag(j):
    """Flag number j: j % 10 == 9 fractional, in {1, 4, 7} targeting, else static."""
    kind = j % 10
    if kind == 9:
        return {
            "state": "ENABLED",
            "variants": {"a": "a", "b": "b"},
            "defaultVariant": "a",
            "targeting": {"fractional": [FRACTIONAL_BUCKET_BY, ["a", 50], ["b", 50]]},
        }
    if kind in (1, 4, 7):
        cond = {
            1: {"==": [{"var": "plan"}, "pro"]},
            4: {"in": [{"var": "country"}, ["US", "DE", "GB"]]},
            7: {">=": [{"var": "age"}, 18 + j % 50]},
        }[kind]
        return {
            "state": "ENABLED",
            "variants": {"on": "on", "off": "off"},
            "defaultVariant": "off",
            "targeting": {"if": [cond, "on", "off"]},
        }
    variants = [
        ({"on": True, "off": False}, "on"),
        ({"alpha": "alpha", "beta": "beta"}, "beta"),
        ({"small": 1, "large": 100}, "large"),
    ][j % 3]
    return {"state": "ENABLED", "variants": variants[0], "defaultVariant": variants[1]}


def scenario_flags():
    rule = {
        "and": [
            {"==": [{"var": "plan"}, "pro"]},
            {"in": [{"var": "country"}, RULE_COUNTRIES]},
            {"ends_with": [{"var": "email"}, ".com"]},
            {">=": [{"var": "age"}, 18]},
            {"sem_ver": [{"var": "appVersion"}, ">=", "2.1.0"]},
        ]
    }
    flags = {
        "static-flag": {
            "state": "ENABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
        "fractional-flag": {
            "state": "ENABLED",
            "variants": {v: v for v in "abcd"},
            "defaultVariant": "a",
            "targeting": {"fractional": [FRACTIONAL_BUCKET_BY] + [[v, 25] for v in "abcd"]},
        },
        "rule-flag": {
            "state": "ENABLED",
            "variants": {"on": "on", "off": "off"},
            "defaultVariant": "off",
            "targeting": {"if": [rule, "on", "off"]},
        },
        "disabled-flag": {
            "state": "DISABLED",
            "variants": {"on": True, "off": False},
            "defaultVariant": "on",
        },
    }
    flags.update({f"bulk-{j:03d}": bulk_flag(j) for j in range(100)})
    return flags


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--scenarios", action="store_true")
    args = ap.parse_args()
    if args.scenarios:
        # One flag per line: readable, and diffs stay one line per flag.
        lines = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in scenario_flags().items()]
        text = '{\n  "flags": {\n' + ",\n".join(lines) + "\n  }\n}\n"
    else:
        flags = {f"flag-{j:05d}": bulk_flag(j) for j in range(args.count)}
        text = json.dumps({"flags": flags}, separators=(",", ":")) + "\n"
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
