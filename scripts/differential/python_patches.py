"""Explanation patches for the Python reference (openfeature-flagd-core 2.0.0
on panzi-json-logic 1.0.1).

Each patch replaces ONE documented behaviour of the Python reference with the
behaviour of JavaScript JsonLogic / flagd's Go evaluator, at run time, in the
oracle process only. compare.py runs the oracle once per patch: when Ensign
agrees with the patched reference on a case it disagreed with the plain one,
the mismatch is explained by that behaviour, and known-differences.json can
accept it by name. Sections of docs/adr/0006-reference-disagreements.md
describe each behaviour.

Patches are never used to produce the reference results themselves.
"""

from __future__ import annotations

import importlib
import math
from decimal import Decimal
from typing import Any, Callable

from json_logic import builtins as jl

NAN = float("nan")


# ---------------------------------------------------------------------------
# JavaScript conversions


def js_number_to_string(x: float | int) -> str:
    """Number.prototype.toString for the values JSON can carry (and NaN/Inf)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        x = float(x) if abs(x) >= 2**53 else x
        if isinstance(x, int):
            return str(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    r = repr(x)  # shortest round-trip digits, like JS
    if "e" in r or "E" in r:
        mant, exp = r.lower().split("e")
        e = int(exp)
        if -7 < e < 21:
            # JS prints these positionally
            return format(Decimal(r), "f")
        return f"{mant}e{'+' if e > 0 else '-'}{abs(e)}"
    return r


def js_to_primitive(v: Any) -> Any:
    if isinstance(v, list):
        return ",".join("" if x is None else js_to_string(x) for x in v)
    if isinstance(v, dict):
        return "[object Object]"
    return v


def js_to_string(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return js_number_to_string(v)
    if isinstance(v, str):
        return v
    return js_to_primitive(v)


def js_to_number(v: Any) -> float | int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return 1 if v else 0
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, (list, dict)):
        return js_to_number(js_to_primitive(v))
    s = str(v).strip()
    if s == "":
        return 0
    if s in ("Infinity", "+Infinity"):
        return math.inf
    if s == "-Infinity":
        return -math.inf
    low = s.lower()
    if low.startswith(("0x", "0o", "0b")):
        try:
            return int(s, 0)
        except ValueError:
            return NAN
    if any(c in low for c in ("_", "inf", "nan")):
        return NAN
    try:
        return float(s)
    except ValueError:
        return NAN


def js_loose_equals(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (list, dict)) and isinstance(b, (list, dict)):
        return a is b
    if isinstance(a, bool):
        return js_loose_equals(1 if a else 0, b)
    if isinstance(b, bool):
        return js_loose_equals(a, 1 if b else 0)
    if isinstance(a, (list, dict)):
        return js_loose_equals(js_to_primitive(a), b)
    if isinstance(b, (list, dict)):
        return js_loose_equals(a, js_to_primitive(b))
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    x, y = js_to_number(a), js_to_number(b)
    return x == y


def js_strict_equals(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return a is b
    return type(a) is type(b) and a == b


def js_less(a: Any, b: Any, or_equal: bool) -> bool:
    a, b = js_to_primitive(a), js_to_primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return a <= b if or_equal else a < b
    x, y = js_to_number(a), js_to_number(b)
    if (isinstance(x, float) and math.isnan(x)) or (isinstance(y, float) and math.isnan(y)):
        return False
    return x <= y if or_equal else x < y


# ---------------------------------------------------------------------------
# the patches


def _ops(mod) -> dict:
    return mod.OPERATORS


def patch_float_variant_name(core_mod, targeting_mod):
    """Targeting results that are numbers are named the JavaScript/Go way
    (2.0 -> "2", NaN -> "NaN"), not with Python's str() ("2.0", "nan")."""
    original = core_mod.targeting

    def wrapped(*a, **kw):
        r = original(*a, **kw)
        if isinstance(r, float) or (isinstance(r, int) and not isinstance(r, bool)):
            return js_number_to_string(r)
        return r

    core_mod.targeting = wrapped


def patch_array_result_join(core_mod, targeting_mod):
    """Array/object targeting results are named by JavaScript's toString
    (["a","b"] -> "a,b"), not Python's str()."""
    original = core_mod.targeting

    def wrapped(*a, **kw):
        r = original(*a, **kw)
        if isinstance(r, (list, dict)):
            return js_to_primitive(r)
        return r

    core_mod.targeting = wrapped


def patch_ieee_division(core_mod, targeting_mod):
    """`/` and `%` by zero give Infinity/NaN (IEEE 754) instead of raising."""
    ops = _ops(targeting_mod)

    def div(data=None, a=None, b=None, *_):
        x, y = jl.to_number(a), jl.to_number(b)
        if y == 0:
            if x == 0 or (isinstance(x, float) and math.isnan(x)):
                return NAN
            return math.copysign(math.inf, x) * (math.copysign(1, y) if isinstance(y, float) else 1)
        return x / y

    def mod(data=None, a=None, b=None, *_):
        x, y = jl.to_number(a), jl.to_number(b)
        if y == 0:
            return NAN
        return x % y

    ops["/"] = div
    ops["%"] = mod


def patch_modulo_sign(core_mod, targeting_mod):
    """`%` takes the sign of the dividend (JavaScript, Go math.Mod), not of
    the divisor (Python)."""
    ops = _ops(targeting_mod)
    prev = ops["%"]

    def mod(data=None, a=None, b=None, *_):
        x, y = jl.to_number(a), jl.to_number(b)
        if y == 0:
            return prev(data, a, b)
        r = math.fmod(x, y)
        if isinstance(x, int) and isinstance(y, int):
            r = int(r)
        return r

    ops["%"] = mod


def patch_strict_equality(core_mod, targeting_mod):
    """`===`/`!==` tell booleans from numbers (Python: True == 1)."""
    ops = _ops(targeting_mod)
    ops["==="] = lambda data=None, a=None, b=None, *_: js_strict_equals(a, b)
    ops["!=="] = lambda data=None, a=None, b=None, *_: not js_strict_equals(a, b)


def patch_in_strict(core_mod, targeting_mod):
    """`in` on an array uses strict equality (JavaScript indexOf), so
    1 is not in [true]."""
    ops = _ops(targeting_mod)
    prev = ops["in"]

    def op_in(data=None, needle=None, haystack=None, *_):
        if isinstance(haystack, list):
            return any(js_strict_equals(needle, x) for x in haystack)
        return prev(data, needle, haystack)

    ops["in"] = op_in


def patch_loose_equality(core_mod, targeting_mod):
    """`==`/`!=` follow JavaScript's abstract equality: null equals only null
    (Python treats null as 0: null == 0 and null == false are true)."""
    ops = _ops(targeting_mod)
    ops["=="] = lambda data=None, a=None, b=None, *_: js_loose_equals(a, b)
    ops["!="] = lambda data=None, a=None, b=None, *_: not js_loose_equals(a, b)


def patch_minus_null(core_mod, targeting_mod):
    """Binary `-` with a null second operand subtracts 0 (Python negates the
    first operand, as if `-` were unary)."""
    ops = _ops(targeting_mod)

    def minus(data=None, *args):
        if len(args) == 1:
            return -jl.to_number(args[0])
        if not args:
            return 0
        return jl.to_number(args[0]) - jl.to_number(args[1])

    ops["-"] = minus


def patch_js_relational(core_mod, targeting_mod):
    """`<`, `<=`, `>`, `>=` compare like JavaScript: strings as strings only
    when both sides are strings, otherwise as numbers (null -> 0)."""
    ops = _ops(targeting_mod)

    def make(lt: bool, eq: bool) -> Callable:
        def cmp2(a, b):
            return js_less(a, b, eq) if lt else js_less(b, a, eq)

        def op(data=None, a=None, b=None, c=None, *rest):
            if c is None and not rest:
                return cmp2(a, b)
            return cmp2(a, b) and cmp2(b, c)

        return op

    ops["<"] = make(True, False)
    ops["<="] = make(True, True)
    ops[">"] = make(False, False)
    ops[">="] = make(False, True)


def patch_cat_join(core_mod, targeting_mod):
    """`cat` joins like JavaScript's Array.join and Go: null -> "",
    true -> "true", numbers in JavaScript form (Python: "null", "True",
    "%.15g")."""
    ops = _ops(targeting_mod)

    def cat(data=None, *args):
        return "".join("" if a is None else js_to_string(a) for a in args)

    ops["cat"] = cat


def patch_js_to_number(core_mod, targeting_mod):
    """String-to-number conversion follows JavaScript's Number(): "" and
    whitespace are 0 (Python: NaN)."""
    jl.to_number = js_to_number
    # the builtins close over the module-level name, so this reaches them


def patch_minmax(core_mod, targeting_mod):
    """`min`/`max` return NaN when any argument is not a number, and
    +/-Infinity with no arguments (JavaScript Math.min/max)."""
    ops = _ops(targeting_mod)

    def mk(fn, empty):
        def op(data=None, *args):
            if not args:
                return empty
            nums = [jl.to_number(a) for a in args]
            if any(isinstance(n, float) and math.isnan(n) for n in nums):
                return NAN
            return fn(nums)

        return op

    ops["min"] = mk(min, math.inf)
    ops["max"] = mk(max, -math.inf)


def patch_bool_not_number(core_mod, targeting_mod):
    """A float request on a boolean variant is a type mismatch (Python's bool
    is an int subclass, so the reference serves 1.0/0.0)."""
    cls = core_mod.FlagdCore
    original = cls._check_type

    def check(result, flag_type):
        if flag_type in ("float", "integer") and isinstance(result.value, bool):
            from openfeature.exception import TypeMismatchError

            if not (result.reason == core_mod.Reason.DEFAULT and result.variant is None):
                raise TypeMismatchError("bool is not a number")
        return original(result, flag_type)

    cls._check_type = staticmethod(check)


def patch_integer_whole_float(core_mod, targeting_mod):
    """An integer request accepts a whole float variant within +/-(2^53-1)
    (Ensign ADR 0005); the reference accepts Python ints only."""
    cls = core_mod.FlagdCore
    original = cls._check_type

    def check(result, flag_type):
        v = result.value
        if (flag_type == "integer" and isinstance(v, float) and not isinstance(v, bool)
                and v.is_integer() and abs(v) <= 2**53 - 1):
            return None
        return original(result, flag_type)

    cls._check_type = staticmethod(check)


def patch_var_null_is_null(core_mod, targeting_mod):
    """`var` returns null for a key whose value is JSON null instead of the
    default (JavaScript json-logic-js; NOT flagd: Go and both references
    return the default). Used to recognise an Ensign deviation."""
    ops = _ops(targeting_mod)
    original = ops["var"]
    missing = object()

    def op_var(data=None, key=None, default=None):
        if key is None or key == "" or not isinstance(key, str):
            return original(data, key, default)
        cur = data
        for prop in key.split("."):
            if isinstance(cur, dict):
                cur = cur.get(prop, missing)
            elif isinstance(cur, (list, str)):
                return original(data, key, default)
            else:
                return default
            if cur is missing:
                return default
            if cur is None:
                return None
        return cur

    ops["var"] = op_var


def patch_eager_operator_check(core_mod, targeting_mod):
    """An unknown operator fails the whole rule (PARSE_ERROR on every
    evaluation, as in flagd Go and flagd-core JS), not only when the branch
    holding it is evaluated."""
    original = core_mod.targeting
    ops = _ops(targeting_mod)
    lazy = {"if", "?:", "and", "or", "filter", "map", "reduce", "all", "some", "none"}

    def unknown(node) -> bool:
        if isinstance(node, list):
            return any(unknown(x) for x in node)
        if isinstance(node, dict) and len(node) == 1:
            (op, args), = node.items()
            if op not in ops and op not in lazy:
                return True
            return unknown(args)
        return False

    def wrapped(key, rule, *a, **kw):
        if unknown(rule):
            raise ReferenceError("unknown operator")
        return original(key, rule, *a, **kw)

    core_mod.targeting = wrapped


PATCHES: dict[str, Callable] = {
    "float-variant-name": patch_float_variant_name,
    "array-result-join": patch_array_result_join,
    "ieee-division": patch_ieee_division,
    "modulo-sign": patch_modulo_sign,
    "strict-equality": patch_strict_equality,
    "in-strict": patch_in_strict,
    "loose-equality": patch_loose_equality,
    "minus-null": patch_minus_null,
    "js-relational": patch_js_relational,
    "cat-join": patch_cat_join,
    "js-to-number": patch_js_to_number,
    "minmax-nan": patch_minmax,
    "bool-not-number": patch_bool_not_number,
    "integer-whole-float": patch_integer_whole_float,
    "eager-operator-check": patch_eager_operator_check,
    "var-null-is-null": patch_var_null_is_null,
}

# Patches that describe where Ensign (not the reference) departs from flagd;
# they only name a mismatch in the report, and "combined" leaves them out.
ENSIGN_DEVIATIONS = {"var-null-is-null"}

# Order matters where two patches touch the same operator (`%`).
ORDER = list(PATCHES)


def apply(names: list[str]) -> None:
    core_mod = importlib.import_module("openfeature.contrib.tools.flagd.core.flagd_core")
    targeting_mod = importlib.import_module("openfeature.contrib.tools.flagd.core.targeting.targeting")

    unknown = [n for n in names if n not in PATCHES]
    if unknown:
        raise SystemExit(f"unknown patch(es): {', '.join(unknown)}; known: {', '.join(PATCHES)}")
    for name in ORDER:
        if name in names:
            PATCHES[name](core_mod, targeting_mod)
