#!/usr/bin/env python3
"""Reference oracle: evaluates every case with PyPI openfeature-flagd-core
(fractional v3) and prints one normalized result line per case.

usage: .venv/bin/python oracle_python.py [--patch NAME,...] FLAGS.json CASES.jsonl > OUT.jsonl

--patch applies explanation patches (python_patches.py): one documented
behaviour of the reference replaced by JavaScript / flagd Go semantics. Only
compare.py's attribution of mismatches uses them.

Output line: {"value","variant","reason","errorCode"} with null where absent;
value/variant are null on ERROR, DISABLED and "code default" (no variant).
A "_note" field carries the reference's error for the report only.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import (
    FlagNotFoundError,
    InvalidContextError,
    ParseError,
    TypeMismatchError,
)

# Defaults handed to the resolver; never printed (code defaults become null).
DEFAULTS = {"boolean": False, "string": "", "integer": 0, "float": 0.0, "object": {}}


def error_code(exc: BaseException) -> str:
    if isinstance(exc, FlagNotFoundError):
        return "FLAG_NOT_FOUND"
    if isinstance(exc, ParseError):
        return "PARSE_ERROR"
    if isinstance(exc, TypeMismatchError):
        return "TYPE_MISMATCH"
    if isinstance(exc, InvalidContextError):
        return "INVALID_CONTEXT"
    return "GENERAL"


def json_safe(v):
    """NaN/Infinity are not JSON: print them as strings so the line stays parseable."""
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return repr(v)
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v


def resolve(core: FlagdCore, case: dict):
    ctx = case.get("context")
    if not isinstance(ctx, dict):
        ctx = {}
    attrs = dict(ctx)
    # The OpenFeature SDK carries the targeting key outside the attributes;
    # flagd-core puts it back as `targetingKey` (whatever its JSON type).
    tk = attrs.pop("targetingKey", None)
    ec = EvaluationContext(targeting_key=tk, attributes=attrs)
    t = case["type"]
    fn = {
        "boolean": core.resolve_boolean_value,
        "string": core.resolve_string_value,
        "integer": core.resolve_integer_value,
        "float": core.resolve_float_value,
        "object": core.resolve_object_value,
    }[t]
    return fn(case["flag"], DEFAULTS[t], ec)


def normalize(r) -> dict:
    reason = r.reason.value if hasattr(r.reason, "value") else r.reason
    if r.error_code:
        code = r.error_code.value if hasattr(r.error_code, "value") else str(r.error_code)
        return {"value": None, "variant": None, "reason": "ERROR", "errorCode": code}
    has_variant = r.variant not in (None, "")
    return {
        "value": json_safe(r.value) if has_variant else None,
        "variant": r.variant if has_variant else None,
        "reason": reason,
        "errorCode": None,
    }


def main() -> int:
    args = sys.argv[1:]
    patches: list[str] = []
    if len(args) >= 2 and args[0] == "--patch":
        patches = [p for p in args[1].split(",") if p]
        args = args[2:]
    if len(args) != 2:
        print("usage: oracle_python.py [--patch NAME,...] FLAGS.json CASES.jsonl", file=sys.stderr)
        return 2
    if patches:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import python_patches

        python_patches.apply(patches)
    logging.disable(logging.CRITICAL)
    sys.setrecursionlimit(10000)
    core = FlagdCore()
    with open(args[0], encoding="utf-8") as f:
        core.set_flags(f.read())
    out = []
    with open(args[1], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            case = json.loads(line)
            try:
                res = normalize(resolve(core, case))
            except Exception as exc:  # noqa: BLE001 - every reference failure is a result
                res = {
                    "value": None,
                    "variant": None,
                    "reason": "ERROR",
                    "errorCode": error_code(exc),
                    "_note": f"{type(exc).__name__}: {exc}"[:300],
                }
            out.append(json.dumps(res, ensure_ascii=False, allow_nan=False))
    sys.stdout.write("\n".join(out) + ("\n" if out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
