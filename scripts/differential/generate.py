#!/usr/bin/env python3
"""Deterministic generator of flags and evaluation cases for Ensign's
differential tests.

Writes, into --out (default scripts/differential/out):
- flags.json   a flagd flag document (several hundred flags, with $evaluators)
- cases.jsonl  one request a line: {"flag","type","context"}
- families.json  flag key -> family (the operator the flag was built around),
  read by compare.py to group mismatches.

Every flag key starts with its family (e.g. "mod-0042"), so a mismatch can be
traced back to what the flag exercises. Same --seed, same files, byte for byte.

Avoided on purpose: `$flagd.timestamp` (time-dependent) and anything that makes
a document invalid for flagd as a whole (unknown `$ref`, a defaultVariant that
names no variant, mixed variant types): one bad flag would reject every flag.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

TYPES = ["boolean", "string", "integer", "float", "object"]

# ---------------------------------------------------------------------------
# Value pools shared by contexts and rule literals, so that conditions go both
# ways.
FIRST = ["alice", "bob", "carol", "dave", "erin", "frank", "ballmer", "jack", "queen", "Zoë"]
DOMAINS = ["example.com", "corp.example", "macrosoft.com", "mail.io", "CORP.EXAMPLE"]
NAMES = ["Alice", "bob", "Carol Ann", "", "Ünïcödé", "jack", "queen", "ten", "nine", "3"]
TIERS = ["free", "pro", "enterprise"]
COUNTRIES = ["US", "CA", "DE", "FR", "JP", "MX", "BR"]
VERSIONS = [
    "1.0.0", "1.2.3", "2.0.0", "2.0.0-alpha", "2.0.0-beta.2", "v1.5.0", "V2.1.0", "1.2", "3",
    "0.9.9", "1.0.0+build.5", "10.0.0", "not-a-version", "2.0.0.0", "",
]
LOCALES = ["en-US", "de-DE", "fr", "pt-BR", "ja"]
TAGS = ["beta", "internal", "vip", "early", "qa"]
ROLES = ["admin", "editor", "viewer", "billing"]
CITIES = ["Berlin", "Paris", "Tokyo", "Austin", "São Paulo"]

STRING_VARIANTS = ["red", "green", "blue", "yellow", "control", "treatment", "alpha", "omega"]
BOOL_NAME_PAIRS = [("on", "off"), ("true", "false"), ("enabled", "disabled"), ("yes", "no")]
INT_VALUES = [0, 1, 2, 3, 5, 7, 10, 42, -1, 100, 65536, 2147483647]
FLOAT_VALUES = [0.5, 1.25, -0.75, 3.14159, 0.1, 99.99, 2.0, 0.0, 1e-3, 12.5]
OBJECT_VALUES = [
    {"theme": "dark", "size": 3},
    {"theme": "light", "size": 1, "beta": True},
    {},
    {"nested": {"a": [1, 2, 3], "b": None}},
    {"limits": {"rps": 100, "burst": 2.5}},
    {"list": ["x", "y"]},
]

EVALUATORS = {
    "is_corp": {"ends_with": [{"var": "email"}, "@corp.example"]},
    "is_adult": {">=": [{"var": "age"}, 18]},
    "is_beta": {"==": [{"var": "beta"}, True]},
    "pro_or_better": {"in": [{"var": "tier"}, ["pro", "enterprise"]]},
    "is_ballmer": {"==": ["ballmer@macrosoft.com", {"var": ["email"]}]},
    "eu_user": {"in": [{"var": "country"}, ["DE", "FR"]]},
}


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    # -- small helpers -----------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def sample(self, seq, k):
        return self.r.sample(list(seq), k)

    # -- literal pools -----------------------------------------------------
    def email(self):
        return f"{self.pick(FIRST).lower()}@{self.pick(DOMAINS)}"

    def num_literal(self):
        return self.pick([0, 1, 5, 10, 17, 18, 21, 30, 40.5, 50, 65, 99, -3, 2.5])

    def mixed_literal(self):
        """A literal of any JSON type, for loose/strict equality probes."""
        return self.pick([
            0, 1, 18, 30, "30", "1", "", "pro", True, False, None, 1.0, 0.5, "true", "0",
            [], ["pro"], "US",
        ])

    # -- context -----------------------------------------------------------
    def targeting_key(self):
        x = self.r.random()
        if x < 0.70:
            return f"user-{self.r.randrange(10000)}"
        if x < 0.80:
            return self.email()
        if x < 0.84:
            return self.pick(["", " ", "jon@company.com", "jane@company.com", "user1", "Ünï-ключ"])
        if x < 0.88:
            return self.pick([42, 0, 1.5, -7])
        if x < 0.90:
            return self.pick([True, False])
        if x < 0.91:
            return None
        return "__missing__"

    def context(self) -> dict:
        c: dict[str, Any] = {}
        tk = self.targeting_key()
        if tk != "__missing__":
            c["targetingKey"] = tk

        def put(key, gen, p_missing=0.15, p_null=0.04):
            x = self.r.random()
            if x < p_missing:
                return
            if x < p_missing + p_null:
                c[key] = None
                return
            c[key] = gen()

        put("email", lambda: self.email() if self.chance(0.93) else self.pick([42, "", "no-at-sign", True]))
        put("name", lambda: self.pick(NAMES) if self.chance(0.95) else self.pick([7, ["jack"]]))
        put("tier", lambda: self.pick(TIERS) if self.chance(0.9) else self.pick(["PRO", "", 3, "gold"]))
        put("country", lambda: self.pick(COUNTRIES) if self.chance(0.92) else self.pick(["", "us", 1]))
        put("age", lambda: self.r.randrange(0, 100) if self.chance(0.8)
            else self.pick([17.5, 18.0, "42", "18", True, -1, 65, 1e3, "abc"]))
        put("score", lambda: round(self.r.uniform(0, 100), 2) if self.chance(0.8)
            else self.pick([50, 0, "12.5", -0.5, 1e-7]))
        put("visits", lambda: self.r.randrange(0, 50) if self.chance(0.85)
            else self.pick([-4, 7.5, 0, "9", 3.0]))
        put("beta", lambda: self.chance(0.5) if self.chance(0.85) else self.pick(["true", "false", 1, 0, ""]))
        put("admin", lambda: self.chance(0.2) if self.chance(0.95) else self.pick(["yes", 1]))
        put("version", lambda: self.pick(VERSIONS) if self.chance(0.9) else self.pick([2, 1.5, 10]))
        put("locale", lambda: self.pick(LOCALES))
        put("extra_country", lambda: self.pick(COUNTRIES), p_missing=0.5)
        put("tags", lambda: self.sample(TAGS, self.r.randrange(0, 4)) if self.chance(0.9)
            else self.pick(["beta", [], ["beta", 1, True], None]))
        put("nums", lambda: [self.r.randrange(-5, 20) for _ in range(self.r.randrange(0, 6))]
            if self.chance(0.85) else self.pick([[1.5, 2.5], [], "1,2", [3, "4"], 5]))
        put("items", lambda: [
            {"sku": f"s{self.r.randrange(5)}", "qty": self.r.randrange(0, 15), "price": round(self.r.uniform(0, 50), 2)}
            for _ in range(self.r.randrange(0, 4))
        ], p_missing=0.3)
        put("user", self.user, p_missing=0.15)
        if self.chance(0.02):
            # a client-supplied $flagd must be overwritten by the evaluator
            c["$flagd"] = {"flagKey": "spoofed", "timestamp": 1}
        return c

    def user(self):
        u: dict[str, Any] = {}
        if self.chance(0.9):
            u["id"] = f"u-{self.r.randrange(1000)}" if self.chance(0.8) else self.r.randrange(1000)
        if self.chance(0.85):
            u["name"] = self.pick(NAMES)
        if self.chance(0.8):
            u["role"] = self.pick(ROLES)
        if self.chance(0.7):
            u["roles"] = self.sample(ROLES, self.r.randrange(0, 3))
        if self.chance(0.75):
            a: dict[str, Any] = {}
            if self.chance(0.9):
                a["city"] = self.pick(CITIES)
            if self.chance(0.7):
                a["zip"] = self.pick(["10115", "75001", 10115, "78701"])
            u["address"] = a
        return u

    # -- rule building -----------------------------------------------------
    def var(self, path, default=None, form=None):
        """A `var` in one of its spellings."""
        form = form or self.pick(["plain", "plain", "list"])
        if default is not None:
            return {"var": [path, default]}
        if form == "list":
            return {"var": [path]}
        return {"var": path}

    def str_attr(self):
        return self.pick(["email", "name", "tier", "country", "locale", "user.name", "user.role",
                          "user.address.city", "user.id", "targetingKey"])

    def num_attr(self):
        return self.pick(["age", "score", "visits", "age", "user.address.zip"])

    def any_attr(self):
        return self.pick(["email", "name", "tier", "country", "age", "score", "visits", "beta", "admin",
                          "version", "tags", "nums", "user", "user.id", "user.roles", "missing.key",
                          "tags.0", "nums.1", "user.roles.0"])

    # Conditions, one family each ------------------------------------------
    def c_eq(self, op=None):
        op = op or self.pick(["==", "===", "!=", "!=="])
        x = self.r.random()
        if x < 0.4:
            attr, lit = self.pick([("tier", lambda: self.pick(TIERS)), ("country", lambda: self.pick(COUNTRIES)),
                                   ("user.role", lambda: self.pick(ROLES)), ("email", self.email),
                                   ("name", lambda: self.pick(NAMES))])
            args = [self.var(attr), lit()]
        elif x < 0.8:
            args = [self.var(self.any_attr()), self.mixed_literal()]
        else:
            args = [self.mixed_literal(), self.mixed_literal()]
        if self.chance(0.3):
            args.reverse()
        return {op: args}

    def c_not(self):
        op = self.pick(["!", "!!"])
        inner = self.pick([self.var(self.any_attr()), self.c_eq(), self.var(self.any_attr())])
        return {op: inner if self.chance(0.5) else [inner]}

    def c_cmp(self):
        op = self.pick(["<", "<=", ">", ">="])
        x = self.r.random()
        if x < 0.55:
            args = [self.var(self.num_attr()), self.num_literal()]
            if self.chance(0.3):
                args.reverse()
        elif x < 0.75:  # between form
            lo = self.pick([0, 10, 18, 21, 2.5])
            hi = self.pick([30, 65, 99, 40.5])
            op = self.pick(["<", "<="])
            args = [lo, self.var(self.num_attr()), hi]
        elif x < 0.9:  # strings compare lexicographically
            args = [self.var(self.pick(["country", "tier", "name", "version"])), self.pick(["M", "pro", "b", "1.5", ""])]
        else:
            args = [self.var(self.any_attr()), self.mixed_literal()]
        return {op: args}

    def arith(self, depth=0):
        op = self.pick(["+", "-", "*", "/", "%"])
        def operand():
            if depth < 1 and self.chance(0.2):
                return self.arith(depth + 1)
            return self.var(self.num_attr()) if self.chance(0.6) else self.pick([1, 2, 3, 10, 0.5, 7, "4", -2, 0])
        if op in ("+", "*") and self.chance(0.3):
            return {op: [operand() for _ in range(self.r.randrange(1, 4))]}
        if op == "-" and self.chance(0.15):
            return {"-": [operand()]}  # unary minus
        return {op: [operand(), operand()]}

    def c_arith(self):
        return {self.pick(["<", ">", "==", ">="]): [self.arith(), self.num_literal()]}

    def c_minmax(self):
        op = self.pick(["min", "max"])
        args = [self.var(self.num_attr()) if self.chance(0.6) else self.num_literal() for _ in range(self.r.randrange(1, 4))]
        return {self.pick(["<", ">", ">="]): [{op: args}, self.num_literal()]}

    def c_in(self):
        x = self.r.random()
        if x < 0.35:
            return {"in": [self.var(self.pick(["country", "tier", "user.role"])),
                           self.sample(COUNTRIES + TIERS + ROLES, 3)]}
        if x < 0.6:
            return {"in": [self.pick(["@corp", "corp", "example", ".com", "a", ""]), self.var(self.pick(["email", "name", "locale"]))]}
        if x < 0.85:
            return {"in": [self.pick(TAGS + ROLES), self.var(self.pick(["tags", "user.roles"]))]}
        return {"in": [self.mixed_literal(), self.var(self.any_attr())]}

    def c_merge(self):
        return {"in": [self.var(self.pick(["country", "tier", "extra_country"])),
                       {"merge": [self.sample(COUNTRIES, 2), self.var("extra_country"),
                                  self.pick(["DE", ["pro", "JP"], self.var("tags")])]}]}

    def c_substr(self):
        x = self.r.random()
        if x < 0.5:
            return {"==": [{"substr": [self.var(self.pick(["email", "name", "locale", "country"])), self.pick([0, 1, -3, -4, 2])]},
                           self.pick([".com", "lice", "US", "-US", "ple", "e.com", "DE"])]}
        return {"==": [{"substr": [self.var(self.pick(["email", "name", "locale"])), self.pick([0, 1, -5, 3]), self.pick([1, 2, -1, -2, 5])]},
                       self.pick(["a", "al", "en", "b", "bo", "ca", "US"])]}

    def c_cat(self):
        return {"==": [{"cat": [self.var(self.pick(["tier", "country", "age", "beta"])), self.pick(["-", ":", ""]),
                                self.var(self.pick(["country", "tier", "visits"]))]},
                       self.pick(["pro-US", "free:DE", "enterpriseJP", "pro-CA", "free-US"])]}

    def c_missing(self):
        keys = self.sample(["email", "name", "age", "user.name", "user.address.city", "tier", "nope"], self.r.randrange(1, 4))
        if self.chance(0.5):
            inner = {"missing": keys if self.chance(0.7) else keys[0]}
        else:
            inner = {"missing_some": [self.r.randrange(1, len(keys) + 1), keys]}
        # `missing` returns a list: empty (falsy) when nothing is missing
        return inner if self.chance(0.6) else {"!": [inner]}

    def c_var(self):
        x = self.r.random()
        if x < 0.3:
            return {"==": [self.var(self.pick(["tier", "country"]), default=self.pick(["free", "US"])), self.pick(["free", "US", "pro"])]}
        if x < 0.6:
            return {"==": [self.var(self.pick(["tags.0", "user.roles.0", "nums.0", "user.address.city", "user.address.zip"])),
                           self.pick(["beta", "admin", 3, "Berlin", "10115", 10115])]}
        if x < 0.8:
            return {"!!": [self.var(self.pick(["user", "user.address", "tags", "nums", "beta", "email", "missing.deep.path"]))]}
        return {"==": [self.var(self.any_attr()), self.mixed_literal()]}

    def c_listop(self):
        op = self.pick(["all", "some", "none"])
        x = self.r.random()
        if x < 0.4:
            return {op: [self.var("nums"), {self.pick([">", "<", ">="]): [{"var": ""}, self.pick([0, 5, 10])]}]}
        if x < 0.7:
            return {op: [self.var(self.pick(["tags", "user.roles"])), {"==": [{"var": ""}, self.pick(TAGS + ROLES)]}]}
        return {op: [self.var("items"), {">": [{"var": self.pick(["qty", "price"])}, self.pick([3, 10, 25])]}]}

    def c_mapfilter(self):
        x = self.r.random()
        if x < 0.35:
            return {"in": [self.pick([2, 10, 20, 0, 4]), {"map": [self.var("nums"), {"*": [{"var": ""}, 2]}]}]}
        if x < 0.6:
            return {"in": [self.pick([7, 8, 12]), {"filter": [self.var("nums"), {">": [{"var": ""}, 5]}]}]}
        if x < 0.85:
            return {self.pick([">", ">=", "<"]): [
                {"reduce": [self.var(self.pick(["nums", "items"])),
                            {"+": [{"var": "accumulator"}, {"var": self.pick(["current", "current.qty"])}]},
                            self.pick([0, 1, 0.5])]},
                self.pick([10, 20, 0, 30])]}
        return {"some": [{"filter": [self.var("items"), {">=": [{"var": "qty"}, 5]}]}, {"==": [{"var": "sku"}, self.pick(["s0", "s1", "s2"])]}]}

    def c_sem_ver(self):
        op = self.pick(["=", "!=", "<", "<=", ">", ">=", "^", "~"])
        ver = self.pick(["1.0.0", "2.0.0", "1.2", "v1.5.0", "2.0.0-alpha", "1.2.3", "3", "2.1.0"])
        args = [self.var("version"), op, ver]
        if self.chance(0.15):
            args.reverse()
            args = [args[0], op, args[2]]
        return {"sem_ver": args}

    def c_str_op(self):
        op = self.pick(["starts_with", "ends_with"])
        x = self.r.random()
        if x < 0.75:
            attr = self.pick(["email", "name", "locale", "user.id", "targetingKey", "version"])
            lit = self.pick(["@corp.example", ".com", "al", "user-1", "u-", "en", "bob", "", "v", "ALICE", "jack"])
            return {op: [self.var(attr), lit]}
        return {op: self.pick([[self.var("age"), "1"], [self.var("email")], ["abc", 1], [self.var("email"), "a", "b"]])}

    def c_flagkey(self):
        x = self.r.random()
        if x < 0.4:
            return {self.pick(["starts_with", "ends_with"]): [{"var": "$flagd.flagKey"}, self.pick(["flagkey", "flagkey-00", "1", "7"])]}
        if x < 0.7:
            return {"in": [self.pick(["key-0", "-01", "5"]), {"var": "$flagd.flagKey"}]}
        return {"==": [{"var": "$flagd.flagKey"}, {"cat": ["flagkey-", {"var": "visits"}]}]}

    def c_ref(self):
        name = self.pick(list(EVALUATORS))
        ref = {"$ref": name}
        x = self.r.random()
        if x < 0.5:
            return ref
        if x < 0.75:
            return {"and": [ref, self.any_cond(("ref",))]}
        return {"!": [ref]}

    def c_logic(self):
        op = self.pick(["and", "or"])
        return {op: [self.any_cond(("logic",)) for _ in range(self.r.randrange(1, 4))]}

    def c_fractional(self):
        """fractional used as a condition: it returns booleans here."""
        return {"fractional": [[True, self.pick([0, 1, 50])], [False, self.pick([0, 1, 50])]]} if self.chance(0.3) \
            else {"fractional": [self.var("email"), [True, 50], [False, 50]]}

    COND_FAMILIES = ["eq", "not", "cmp", "arith", "minmax", "in", "merge", "substr", "cat", "missing", "var",
                     "listop", "mapfilter", "sem_ver", "str_op", "flagkey", "ref", "logic"]

    def cond(self, family):
        return getattr(self, "c_" + family)()

    def any_cond(self, exclude=()):
        fam = self.pick([f for f in self.COND_FAMILIES if f not in exclude and f not in ("logic", "ref")])
        return self.cond(fam)

    # Outputs -----------------------------------------------------------------
    def out(self, names: list[str]):
        """What an `if` branch returns: mostly a variant name, sometimes not."""
        x = self.r.random()
        if x < 0.86:
            return self.pick(names)
        if x < 0.91:
            return None
        if x < 0.95:
            return self.pick(["ghost", "RED", "", "Off"])
        if "true" in names and "false" in names:
            return self.pick([True, False])
        numeric = [n for n in names if n.lstrip("-").isdigit()]
        if numeric:
            return int(self.pick(numeric))
        return self.pick([True, 1, 2.5])

    def chain(self, family, names, n=None):
        n = n or self.pick([1, 1, 2, 2, 3])
        args: list[Any] = []
        for i in range(n):
            fam = family if (i == 0 or self.chance(0.7)) else self.pick(self.COND_FAMILIES[:-2])
            args += [self.cond(fam), self.out(names)]
        x = self.r.random()
        if x < 0.8:
            args.append(self.out(names))  # else branch
        # else: no else branch -> null when nothing matched
        return {"if": args}

    # Flag shapes -------------------------------------------------------------
    def variant_names(self, vtype, k=None):
        if vtype == "boolean":
            return list(self.pick(BOOL_NAME_PAIRS))
        k = k or self.r.randrange(2, 5)
        return self.sample(STRING_VARIANTS, k)

    def values_for(self, vtype, names):
        if vtype == "boolean":
            if len(names) == 2:
                first = self.chance(0.8)
                return {names[0]: first, names[1]: not first}
            return {n: self.chance(0.5) for n in names}
        if vtype == "string":
            if self.chance(0.5):
                return {n: n for n in names}
            return {n: self.pick(["#FF0000", "#00FF00", "", "on", "off", n.upper(), "ünï", n]) for n in names}
        if vtype == "integer":
            vals = self.sample(INT_VALUES, len(names)) if len(names) <= len(INT_VALUES) else [self.pick(INT_VALUES) for _ in names]
            return dict(zip(names, vals))
        if vtype == "float":
            vals = [self.pick(FLOAT_VALUES) for _ in names]
            return dict(zip(names, vals))
        if vtype == "number":  # ints and floats in one flag
            return {n: self.pick(INT_VALUES[:6] + FLOAT_VALUES[:6]) for n in names}
        return {n: self.pick(OBJECT_VALUES) for n in names}

    def flag_type(self):
        return self.pick(["boolean", "string", "string", "integer", "float", "object", "number"])


def build_flag(g: Gen, family: str) -> tuple[dict, str]:
    """Return (flag, value type) for a family."""
    vtype = g.flag_type()
    names = g.variant_names(vtype)
    targeting: Any = None
    state = "ENABLED"

    if family == "static":
        targeting = g.pick([None, None, {}])
    elif family == "disabled":
        state = "DISABLED"
        targeting = g.pick([None, g.chain("eq", names)])
    elif family in Gen.COND_FAMILIES:
        targeting = g.chain(family, names)
    elif family == "var_direct":
        # the attribute's value is the variant name
        attr, pool = g.pick([("tier", TIERS), ("country", COUNTRIES), ("user.role", ROLES), ("locale", LOCALES)])
        names = g.sample(pool, min(len(pool), g.r.randrange(2, 5)))
        if vtype == "boolean":
            vtype = "string"
        targeting = g.pick([{"var": attr}, {"var": [attr, names[0]]}, {"or": [{"var": attr}, names[-1]]}])
    elif family == "cat_direct":
        tiers = g.sample(TIERS, 2)
        names = [f"tier-{t}" for t in tiers] + [g.pick(["tier-", "tier-gold"])]
        if vtype == "boolean":
            vtype = "string"
        targeting = {"cat": ["tier-", {"var": "tier"}]}
    elif family == "substr_direct":
        names = ["a", "b", "c", "j", "q", "e", "al", "bo"]
        if vtype == "boolean":
            vtype = "integer"
        targeting = {"substr": [g.var(g.pick(["email", "name", "targetingKey"])), 0, g.pick([1, 1, 2])]}
    elif family == "arith_direct":
        # numbers returned by targeting are stringified by flagd
        names = ["0", "1", "2", "3", "4", "-1", "10", "0.5", "1.5", "2.5"]
        if vtype == "boolean":
            vtype = "float"
        targeting = g.pick([
            {"%": [g.var(g.pick(["visits", "age", "nums.0", "targetingKey"])), g.pick([2, 3, 4])]},
            {"-": [g.var("visits"), g.var("age")]},
            {"/": [g.var(g.pick(["visits", "age"])), g.pick([2, 10, 4])]},
            {"min": [g.var("visits"), 3]},
            {"max": [g.var("nums.0"), 0, g.pick([1, 2.5])]},
            {"+": [g.var("beta"), g.var("admin")]},
            {"*": [g.var("score"), 0]},
        ])
    elif family == "bool_direct":
        # comparisons return booleans: flagd looks up "true"/"false"
        names = ["true", "false"]
        targeting = g.any_cond(("ref",))
    elif family == "broken":
        # loads (ADR 0004: a warning), answers PARSE_ERROR on every evaluation
        targeting = g.pick([
            {"if": [{"$ref": "no_such_evaluator"}, g.pick(names), g.pick(names)]},
            {"if": [{"no_such_operator": [{"var": "tier"}]}, g.pick(names), g.pick(names)]},
            {"if": [g.any_cond(("ref",)), {"no_such_operator": []}, g.pick(names)]},
        ])
    elif family == "shape_direct":
        # results that are not strings: arrays, objects, integral floats, numbers
        names = ["beta", "1", "2", "1.5", "true", "false", "Berlin"]
        if vtype == "boolean":
            vtype = "string"
        targeting = g.pick([
            {"var": "tags"},
            {"var": "user.address"},
            {"merge": [{"var": "tags"}]},
            {"if": [g.any_cond(("ref",)), 1.0, 2]},
            {"if": [g.any_cond(("ref",)), 1.5, 2.0]},
            {"var": "user.address.city"},
            {"var": "visits"},
        ])
    elif family in ("fractional", "fractional_bucket", "fractional_nested"):
        targeting = build_fractional(g, family, names)
    else:
        raise ValueError(family)

    variants = g.values_for(vtype, names)
    flag: dict[str, Any] = {"state": state, "variants": variants}
    x = g.r.random()
    if x < 0.72:
        flag["defaultVariant"] = g.pick(names)
    elif x < 0.88:
        pass  # absent
    else:
        flag["defaultVariant"] = None
    if targeting is not None:
        flag["targeting"] = targeting
    if g.chance(0.08):
        flag["metadata"] = {"owner": g.pick(["team-a", "team-b"]), "rev": g.r.randrange(10)}
    return flag, vtype


def build_fractional(g: Gen, family: str, names: list[str]) -> dict:
    def weights(k):
        mode = g.pick(["equal", "random", "zeros", "implicit", "big"])
        if mode == "equal":
            return [50] * k if k == 2 else [25] * k
        if mode == "random":
            return [g.r.randrange(0, 100) for _ in range(k)]
        if mode == "zeros":
            w = [0] * k
            w[g.r.randrange(k)] = g.pick([1, 100])
            if g.chance(0.2):
                w = [0] * k  # all zero: null result
            return w
        if mode == "big":
            return [g.pick([1, 1000000, 2**30]) for _ in range(k)]
        return [None] * k  # implicit weight 1

    def entries(k=None):
        k = k or g.pick([1, 2, 2, 3, 4])
        out = []
        for w in weights(k):
            v: Any = g.out(names) if g.chance(0.15) else g.pick(names)
            if v is None:
                v = g.pick(names)
            out.append([v] if w is None else [v, w])
        return out

    if family == "fractional":
        return {"fractional": entries()}
    if family == "fractional_bucket":
        bucket = g.pick([
            {"var": "email"},
            {"var": "targetingKey"},
            # defaults keep `cat` away from null (its null handling is tested
            # by the cat families; here the hash input is under test)
            {"cat": [{"var": "$flagd.flagKey"}, {"var": ["user.name", "anon"]}]},
            {"cat": ["shared-seed", {"var": ["user.id", "anon"]}]},
            {"var": "user.id"},        # string or integer
            {"var": "age"},            # numbers: v3 hashes them, v2 does not accept them
            {"var": "beta"},           # booleans
            {"var": "missing_key"},    # null
            {"var": "user.address"},   # objects
            "fixed-literal",
        ])
        return {"fractional": [bucket] + entries()}
    # nested: inside if, or variant expressions
    x = g.r.random()
    if x < 0.5:
        return {"if": [g.any_cond(("ref",)), {"fractional": entries()}, g.out(names)]}
    inner = {"if": [g.any_cond(("ref",)), g.pick(names), g.pick(names)]}
    return {"fractional": [[inner, 50], [g.pick(names), 50]]}


FAMILY_WEIGHTS = {
    "static": 6, "disabled": 4,
    "eq": 8, "not": 4, "cmp": 8, "arith": 6, "minmax": 4, "in": 6, "merge": 3, "substr": 4, "cat": 4,
    "missing": 5, "var": 6, "listop": 5, "mapfilter": 5, "sem_ver": 8, "str_op": 6, "flagkey": 3,
    "ref": 5, "logic": 6,
    "var_direct": 4, "cat_direct": 3, "substr_direct": 3, "arith_direct": 5, "bool_direct": 6, "shape_direct": 3, "broken": 2,
    "fractional": 8, "fractional_bucket": 8, "fractional_nested": 4,
}


def generate(seed: int, n_flags: int, n_cases: int):
    g = Gen(seed)
    fams = list(FAMILY_WEIGHTS)
    w = [FAMILY_WEIGHTS[f] for f in fams]
    flags: dict[str, Any] = {}
    types: dict[str, str] = {}
    families: dict[str, str] = {}
    # every family at least twice, then weighted draws
    order = fams * 2 + g.r.choices(fams, w, k=max(0, n_flags - 2 * len(fams)))
    for i, fam in enumerate(order):
        key = f"{fam.replace('_', '-')}-{i:04d}"
        flag, vtype = build_flag(g, fam)
        flags[key] = flag
        types[key] = vtype
        families[key] = fam
    doc = {
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": flags,
        "$evaluators": EVALUATORS,
    }

    keys = list(flags)
    cases = []
    for _ in range(n_cases):
        x = g.r.random()
        if x < 0.03:
            key = g.pick(["no-such-flag", "STATIC-0000", "", "flagkey"])
            t = g.pick(TYPES)
        else:
            key = g.pick(keys)
            own = types[key]
            if own == "number":
                own = g.pick(["integer", "float"])
            t = own if g.chance(0.85) else g.pick(TYPES)
        cases.append({"flag": key, "type": t, "context": g.context()})
    return doc, cases, families


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--flags", type=int, default=400, help="number of flags (default 400)")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    doc, cases, families = generate(a.seed, a.flags, a.cases)
    with open(os.path.join(a.out, "flags.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(a.out, "cases.jsonl"), "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    with open(os.path.join(a.out, "families.json"), "w", encoding="utf-8") as f:
        json.dump(families, f, indent=0, sort_keys=True)
        f.write("\n")
    print(f"generate: seed={a.seed} flags={len(doc['flags'])} cases={len(cases)} -> {a.out}")


if __name__ == "__main__":
    main()
