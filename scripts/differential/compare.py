#!/usr/bin/env python3
"""Differential test: Ensign against the two flagd reference evaluators.

Steps: generate.py (seeded flags + cases) -> oracle_node.js (npm
@openfeature/flagd-core, fractional v2) and oracle_python.py (PyPI
openfeature-flagd-core, fractional v3) -> `ensign eval --fractional v2` and
`--fractional v3` -> compare Ensign-v2 with Node and Ensign-v3 with Python.

Every mismatch is put in a category (reference, flag family, fields that
differ, Ensign's outcome -> the reference's outcome) and checked against
known-differences.json: documented disagreements (each pointing at a section of
docs/adr/0006-reference-disagreements.md) do not fail the run; any other
mismatch exits 1. The report goes to out/report.md.

Run it with the repo-local venv's python (scripts/differential.sh does).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import generate  # noqa: E402

FIELDS = ("value", "variant", "reason", "errorCode")
REFS = {
    "node": {"label": "Node @openfeature/flagd-core 4.0.1", "gen": "v2", "other": "python"},
    "python": {"label": "Python openfeature-flagd-core 2.0.0", "gen": "v3", "other": "node"},
}


# ---------------------------------------------------------------------------
# comparison


def same(a: Any, b: Any) -> bool:
    """JSON equality where 1 == 1.0 (numbers compare by value) but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def differing(a: dict, b: dict) -> list[str]:
    return [f for f in FIELDS if not same(a.get(f), b.get(f))]


def outcome(r: dict) -> str:
    if r.get("reason") == "ERROR":
        return f"ERROR/{r.get('errorCode')}"
    if r.get("variant") is None and r.get("reason") in ("DEFAULT", "STATIC"):
        return f"{r.get('reason')}(code default)"
    return str(r.get("reason"))


def operators(node: Any, evaluators: dict, acc: set[str] | None = None, depth: int = 0) -> set[str]:
    """Operator names used by a rule ($ref expanded once, like flagd)."""
    acc = set() if acc is None else acc
    if isinstance(node, list):
        for x in node:
            operators(x, evaluators, acc, depth)
    elif isinstance(node, dict) and len(node) == 1:
        (op, args), = node.items()
        if op == "$ref" and isinstance(args, str) and depth < 3:
            acc.add("$ref")
            operators(evaluators.get(args), evaluators, acc, depth + 1)
        else:
            acc.add(op)
            operators(args, evaluators, acc, depth)
    return acc


def tk_kind(ctx: dict) -> str:
    if "targetingKey" not in ctx:
        return "missing"
    tk = ctx["targetingKey"]
    if not isinstance(tk, str):
        return "nonstring"
    return "empty" if tk == "" else "string"


def has_non_ascii(x: Any) -> bool:
    if isinstance(x, str):
        return not x.isascii()
    if isinstance(x, dict):
        return any(has_non_ascii(k) or has_non_ascii(v) for k, v in x.items())
    if isinstance(x, list):
        return any(has_non_ascii(v) for v in x)
    return False


def value_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "whole-number" if float(v).is_integer() else "non-whole-number"
    if isinstance(v, str):
        return "string"
    return "object"


def variant_type(flag: dict | None) -> str | None:
    if not flag or not flag.get("variants"):
        return None
    v = next(iter(flag["variants"].values()))
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "object"


# ---------------------------------------------------------------------------
# known differences


class Known:
    """One documented category of acceptable mismatches.

    Keys (all but id/adr/reference optional; a list means "any of"):
      reference        "node" | "python"
      families         flag families (generate.py), e.g. ["arith", "arith_direct"]
      ops_any          the flag's rule uses at least one of these operators
      types            requested types
      fields           exact set of differing fields
      ensign, ref      outcome strings (see outcome()), e.g. "ERROR/GENERAL"
      ref_note         regex on the reference's error note
      other_ref        outcome(s) of the other reference on the same case
      other_note       regex on the other reference's error note
      sibling_agrees   true: Ensign (run with the other reference's generation)
                       matches the *other* reference on this case, i.e. Ensign
                       follows one reference where the two disagree
      tk_kind          kind(s) of the context's targetingKey: "string", "empty",
                       "missing", "nonstring"
      non_ascii        true: some string in the context is not ASCII
      variant_type     the flag's variant type(s): "boolean", "string",
                       "number", "object"
      explained_by     (python side) the mismatch disappears when the Python
                       reference runs with one of these explanation patches
                       (python_patches.py), or "combined" (only with all)
      other_explained_by
                       (node side) the same case's Python mismatch is explained
                       by one of these patches
      sibling_explained
                       true: Ensign matches the other reference, or the other
                       reference's mismatch on this case is explained by a patch
      refs_agree       the two references give the same result on this case
      ref_value, ensign_value
                       kind(s) of the value printed: "null", "boolean",
                       "string", "object", "whole-number", "non-whole-number"
    Every listed condition must hold.
    """

    def __init__(self, d: dict):
        self.d = d
        self.id = d["id"]
        self.adr = d["adr"]
        self.hits = 0

    def _in(self, key, value) -> bool:
        want = self.d.get(key)
        if want is None:
            return True
        if isinstance(want, list):
            return value in want
        return value == want

    def matches(self, m: dict) -> bool:
        d = self.d
        if d["reference"] != m["ref"]:
            return False
        if not self._in("families", m["family"]):
            return False
        if not self._in("types", m["type"]):
            return False
        if not self._in("ensign", m["ensign_outcome"]):
            return False
        if not self._in("ref", m["ref_outcome"]):
            return False
        if "fields" in d and sorted(d["fields"]) != sorted(m["fields"]):
            return False
        if "ops_any" in d and not (set(d["ops_any"]) & m["ops"]):
            return False
        if "ops_none" in d and (set(d["ops_none"]) & m["ops"]):
            return False
        if "ref_note" in d and not re.search(d["ref_note"], m["ref_result"].get("_note", "") or ""):
            return False
        if not self._in("other_ref", m["other_outcome"]):
            return False
        if "other_note" in d and not re.search(d["other_note"], m["other_result"].get("_note", "") or ""):
            return False
        if "sibling_agrees" in d and d["sibling_agrees"] != m["sibling_agrees"]:
            return False
        if not self._in("tk_kind", m["tk_kind"]):
            return False
        if "non_ascii" in d and d["non_ascii"] != m["non_ascii"]:
            return False
        if not self._in("variant_type", m["variant_type"]):
            return False
        if "explained_by" in d and not (set(d["explained_by"]) & set(m.get("explained_by", []))):
            return False
        if "other_explained_by" in d and not (set(d["other_explained_by"]) & set(m.get("other_explained_by", []))):
            return False
        if "sibling_explained" in d and d["sibling_explained"] != (m["sibling_agrees"] or bool(m.get("other_explained_by"))):
            return False
        if "refs_agree" in d and d["refs_agree"] != m["refs_agree"]:
            return False
        if not self._in("ref_value", value_kind(m["ref_result"].get("value"))):
            return False
        if not self._in("ensign_value", value_kind(m["ensign_result"].get("value"))):
            return False
        return True


def load_known(path: str) -> list[Known]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return [Known(d) for d in data.get("differences", [])]


# ---------------------------------------------------------------------------
# running things


def run(cmd: list[str], out_path: str, timeout: int = 900) -> float:
    t0 = time.monotonic()
    with open(out_path, "w", encoding="utf-8") as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.stderr.write(f"compare: command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-4000:]}\n")
        sys.exit(2)
    return time.monotonic() - t0


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def short(x: Any, n: int = 400) -> str:
    s = json.dumps(x, ensure_ascii=False, sort_keys=True)
    return s if len(s) <= n else s[: n - 3] + "..."


def public(r: dict) -> dict:
    return {k: r.get(k) for k in FIELDS}


# ---------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cases", type=int, default=5000)
    ap.add_argument("--flags", type=int, default=400)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--ensign", default=os.path.join(REPO, "target", "debug", "ensign"))
    ap.add_argument("--known", default=os.path.join(HERE, "known-differences.json"))
    ap.add_argument("--node", default="node")
    ap.add_argument("--examples", type=int, default=3, help="examples per category in the report")
    ap.add_argument("--no-ensign", action="store_true",
                    help="only compare the two references with each other (no Ensign needed)")
    a = ap.parse_args()

    os.makedirs(a.out, exist_ok=True)
    flags_path = os.path.join(a.out, "flags.json")
    cases_path = os.path.join(a.out, "cases.jsonl")

    doc, cases, families = generate.generate(a.seed, a.flags, a.cases)
    with open(flags_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    with open(cases_path, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    with open(os.path.join(a.out, "families.json"), "w", encoding="utf-8") as f:
        json.dump(families, f, indent=0, sort_keys=True)

    timings = {}
    results: dict[str, list[dict]] = {}
    timings["node"] = run([a.node, os.path.join(HERE, "oracle_node.js"), flags_path, cases_path],
                          os.path.join(a.out, "node.jsonl"))
    timings["python"] = run([sys.executable, os.path.join(HERE, "oracle_python.py"), flags_path, cases_path],
                            os.path.join(a.out, "python.jsonl"))
    results["node"] = read_jsonl(os.path.join(a.out, "node.jsonl"))
    results["python"] = read_jsonl(os.path.join(a.out, "python.jsonl"))
    if not a.no_ensign:
        if not os.access(a.ensign, os.X_OK):
            sys.stderr.write(f"compare: no Ensign binary at {a.ensign} (build it, or pass --no-ensign)\n")
            return 2
        for gen in ("v2", "v3"):
            out = os.path.join(a.out, f"ensign-{gen}.jsonl")
            timings[f"ensign-{gen}"] = run(
                [a.ensign, "eval", "--flags", flags_path, "--cases", cases_path, "--fractional", gen], out)
            results[f"ensign-{gen}"] = read_jsonl(out)
    patch_names: list[str] = []
    if not a.no_ensign:
        import python_patches

        patch_names = list(python_patches.PATCHES)
        t0 = time.monotonic()
        for name in patch_names + ["*"]:
            # "*": every patch that describes a reference behaviour; not the ones
            # that describe an Ensign deviation (python_patches.ENSIGN_DEVIATIONS)
            arg = ",".join(p for p in patch_names if p not in python_patches.ENSIGN_DEVIATIONS) if name == "*" else name
            out = os.path.join(a.out, f"python-patched-{name if name != '*' else 'all'}.jsonl")
            run([sys.executable, os.path.join(HERE, "oracle_python.py"), "--patch", arg, flags_path, cases_path], out)
            results[f"py:{name}"] = read_jsonl(out)
        timings["python-patched"] = time.monotonic() - t0
    for name, rows in results.items():
        if len(rows) != len(cases):
            sys.stderr.write(f"compare: {name} printed {len(rows)} lines for {len(cases)} cases\n")
            return 2

    evaluators = doc.get("$evaluators", {})
    flag_ops = {k: operators(f.get("targeting"), evaluators) for k, f in doc["flags"].items()}

    def describe(i: int) -> dict:
        c = cases[i]
        key = c["flag"]
        ctx = c.get("context") or {}
        return {
            "family": families.get(key, "no-such-flag"),
            "ops": flag_ops.get(key, set()),
            "type": c["type"],
            "tk_kind": tk_kind(ctx),
            "non_ascii": has_non_ascii(ctx),
            "variant_type": variant_type(doc["flags"].get(key)),
        }

    report: list[str] = []
    summary = {}
    exit_code = 0

    if a.no_ensign:
        pairs = []
    else:
        pairs = [("node", "ensign-v2"), ("python", "ensign-v3")]
    known = load_known(a.known)

    def explained(i: int) -> list[str]:
        """Patches that make the Python reference agree with Ensign-v3 on case i."""
        if not patch_names or not differing(results["ensign-v3"][i], results["python"][i]):
            return []
        got = [p for p in patch_names if not differing(results["ensign-v3"][i], results[f"py:{p}"][i])]
        if not got and not differing(results["ensign-v3"][i], results["py:*"][i]):
            got = ["combined"]
        return got

    all_mismatches: dict[str, list[dict]] = {}
    for ref, ens in pairs:
        other = REFS[ref]["other"]
        other_ens = "ensign-v3" if ens == "ensign-v2" else "ensign-v2"
        mism = []
        for i in range(len(cases)):
            e, r = results[ens][i], results[ref][i]
            fields = differing(e, r)
            if not fields:
                continue
            m = describe(i)
            m.update({
                "i": i, "ref": ref, "fields": fields,
                "ensign_result": e, "ref_result": r, "other_result": results[other][i],
                "ensign_outcome": outcome(e), "ref_outcome": outcome(r),
                "other_outcome": outcome(results[other][i]),
                "sibling_agrees": not differing(results[other_ens][i], results[other][i]),
                "refs_agree": not differing(results["node"][i], results["python"][i]),
            })
            if ref == "python":
                m["explained_by"] = explained(i)
            else:
                m["other_explained_by"] = explained(i)
            m["known"] = next((k for k in known if k.matches(m)), None)
            if m["known"]:
                m["known"].hits += 1
            mism.append(m)
        all_mismatches[ref] = mism
        unexpected = sum(1 for m in mism if not m["known"])
        summary[ref] = {"cases": len(cases), "match": len(cases) - len(mism), "mismatch": len(mism),
                        "known": len(mism) - unexpected, "unexpected": unexpected}
        if unexpected:
            exit_code = 1

    # every mismatch, one JSON object a line, for digging
    with open(os.path.join(a.out, "mismatches.jsonl"), "w", encoding="utf-8") as f:
        for ref, _ in pairs:
            for m in all_mismatches[ref]:
                rec = {k: v for k, v in m.items() if k not in ("known", "ops")}
                rec["ops"] = sorted(m["ops"])
                rec["known"] = m["known"].id if m["known"] else None
                rec["flag"] = cases[m["i"]]["flag"]
                f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")

    # --- report --------------------------------------------------------------
    report.append("# Ensign differential test report\n")
    report.append(f"seed {a.seed}, {len(doc['flags'])} flags, {len(cases)} cases. "
                  f"Timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()) + "\n")
    if pairs:
        report.append("| reference | Ensign run | cases | matches | mismatches | known (allow-listed) | unexpected |")
        report.append("| --- | --- | --- | --- | --- | --- | --- |")
        for ref, ens in pairs:
            s = summary[ref]
            report.append(f"| {REFS[ref]['label']} | `{ens}` | {s['cases']} | {s['match']} | {s['mismatch']} | "
                          f"{s['known']} | {s['unexpected']} |")
        report.append("")

    def category_key(m):
        return (m["known"].id if m["known"] else "UNEXPECTED", m["family"], "+".join(m["fields"]),
                f"{m['ensign_outcome']} -> {m['ref_outcome']}")

    def example_lines(m):
        c = cases[m["i"]]
        flag = doc["flags"].get(c["flag"])
        lines = [
            f"- case #{m['i']}: flag `{c['flag']}`, type `{c['type']}`, ops {sorted(m['ops'])}",
            f"  - flag: `{short(flag, 600)}`",
            f"  - context: `{short(c['context'], 500)}`",
            f"  - Ensign: `{short(public(m['ensign_result']))}`",
            f"  - {m['ref']}: `{short(m['ref_result'])}`",
            f"  - other reference ({REFS[m['ref']]['other']}): `{short(m['other_result'])}`"
            f"{' (Ensign agrees with it)' if m['sibling_agrees'] else ''}",
        ]
        return lines

    for ref, ens in pairs:
        mism = all_mismatches[ref]
        report.append(f"## {REFS[ref]['label']} vs `{ens}`: {len(mism)} mismatches\n")
        if not mism:
            continue
        groups: dict[tuple, list[dict]] = collections.defaultdict(list)
        for m in mism:
            groups[category_key(m)].append(m)
        # unexpected first
        for key in sorted(groups, key=lambda k: (k[0] != "UNEXPECTED", k[0], -len(groups[k]), k)):
            ms = groups[key]
            kid, fam, fields, outc = key
            ops = collections.Counter(op for m in ms for op in m["ops"])
            title = f"### [{kid}] family `{fam}`, fields {fields}, {outc}: {len(ms)}"
            if ms[0]["known"]:
                title += f" (ADR 0006 {ms[0]['known'].adr})"
            report.append(title)
            expl = collections.Counter(p for m in ms for p in (m.get("explained_by") or m.get("other_explained_by") or ["-"]))
            report.append(f"operators involved: {', '.join(f'{o}×{n}' for o, n in ops.most_common(12))}; "
                          f"Ensign agrees with the other reference in {sum(m['sibling_agrees'] for m in ms)}/{len(ms)}; "
                          f"explained by Python patches: {', '.join(f'{p}×{n}' for p, n in expl.most_common())}\n")
            for m in ms[: a.examples]:
                report.extend(example_lines(m))
            report.append("")

    # reference vs reference (always useful; v2/v3 differences expected on fractional)
    cross = []
    for i in range(len(cases)):
        fields = differing(results["node"][i], results["python"][i])
        if fields:
            m = describe(i)
            m.update({"i": i, "fields": fields})
            cross.append(m)
    report.append(f"## Node vs Python (the references with each other): {len(cross)} of {len(cases)} differ\n")
    cgroups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for m in cross:
        cgroups[(m["family"], "+".join(m["fields"]), outcome(results["node"][m["i"]]) + " vs " +
                 outcome(results["python"][m["i"]]))].append(m)
    report.append("| family | fields | node outcome vs python outcome | cases |")
    report.append("| --- | --- | --- | --- |")
    for key in sorted(cgroups, key=lambda k: -len(cgroups[k])):
        report.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(cgroups[key])} |")
    report.append("")
    if a.no_ensign:
        for key in sorted(cgroups, key=lambda k: -len(cgroups[k])):
            report.append(f"### {key}: {len(cgroups[key])}")
            for m in cgroups[key][: a.examples]:
                c = cases[m["i"]]
                report.append(f"- case #{m['i']} flag `{c['flag']}` type `{c['type']}`: "
                              f"`{short(doc['flags'].get(c['flag']), 500)}`")
                report.append(f"  - context `{short(c['context'], 400)}`")
                report.append(f"  - node `{short(results['node'][m['i']])}`")
                report.append(f"  - python `{short(results['python'][m['i']])}`")
            report.append("")

    if known and pairs:
        report.append("## Allow-list entries\n")
        report.append("| id | ADR section | mismatches covered |")
        report.append("| --- | --- | --- |")
        for k in known:
            report.append(f"| {k.id} | {k.adr} | {k.hits} |")
        report.append("")

    with open(os.path.join(a.out, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(report) + "\n")

    # --- console summary -----------------------------------------------------
    print(f"compare: report in {os.path.relpath(os.path.join(a.out, 'report.md'), os.getcwd())}")
    if not pairs:
        print(f"differential (references only): cases={len(cases)} node-vs-python differ={len(cross)}")
        return 0
    for ref, ens in pairs:
        s = summary[ref]
        print(f"  {ens} vs {ref}: cases={s['cases']} match={s['match']} mismatch={s['mismatch']} "
              f"(known={s['known']} unexpected={s['unexpected']})")
        if s["unexpected"]:
            cats = collections.Counter(category_key(m)[1:] for m in all_mismatches[ref] if not m["known"])
            for (fam, fields, outc), n in cats.most_common(15):
                print(f"    UNEXPECTED {n:4d}  {fam}  [{fields}]  {outc}")
    n, p = summary["node"], summary["python"]
    verdict = "PASS" if exit_code == 0 else "FAIL"
    print(f"differential: {verdict} seed={a.seed} cases={len(cases)} "
          f"v2/node match={n['match']} mismatch={n['mismatch']} unexpected={n['unexpected']}; "
          f"v3/python match={p['match']} mismatch={p['mismatch']} unexpected={p['unexpected']}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
