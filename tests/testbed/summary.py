"""Per-feature counts of testbed runs: one run's table, and the overall summary.

conftest.py renders each pytest run with `render` (and writes it as JSON with
`--summary-json`); scripts/testbed.sh calls this file on those JSON files at the
end to print every pass of every mode together:

    python summary.py RUN.json...
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

COUNTS = ("passed", "failed", "skipped")
SKIP_PREFIX = "not runnable: "


@dataclass
class Run:
    """One pytest run: a mode (and pass) of the testbed."""

    mode: str
    title: str
    results: dict[str, dict[str, int]]  # feature -> passed / failed / skipped cases
    skips: list[list[str]] = field(default_factory=list)  # [feature, scenario, reason] per case
    failures: list[list[str]] = field(default_factory=list)  # [feature, scenario label]
    other_mode: dict[str, int] = field(default_factory=dict)  # feature -> deselected cases
    label: str = ""  # e.g. "pass 2/2"; set by the driver script

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Run:
        return cls(**data)

    def total(self) -> dict[str, int]:
        total = dict.fromkeys(COUNTS, 0)
        for r in self.results.values():
            for k in COUNTS:
                total[k] += r.get(k, 0)
        return total


def _table(results: dict[str, dict[str, int]], total: dict[str, int], indent: str = "") -> list[str]:
    width = max([len(f) for f in results] + [len("feature")]) + 2
    lines = [f"{indent}{'feature':<{width}}{'passed':>8}{'failed':>8}{'skipped':>9}"]
    for feature in sorted(results):
        r = results[feature]
        lines.append(f"{indent}{feature:<{width}}" + "".join(
            f"{r.get(k, 0):>{w}}" for k, w in zip(COUNTS, (8, 8, 9))))
    lines.append(f"{indent}{'total':<{width}}" + "".join(
        f"{total[k]:>{w}}" for k, w in zip(COUNTS, (8, 8, 9))))
    return lines


def _skip_lines(skips: list[list[str]], indent: str = "") -> list[str]:
    by_reason: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for feature, scenario, reason in skips:
        by_reason[reason.removeprefix(SKIP_PREFIX)][(feature, scenario)] += 1
    lines = []
    for reason, scenarios in by_reason.items():
        lines.append(f"{indent}  - {reason}")
        for (feature, scenario), n in scenarios.items():
            lines.append(f"{indent}      {feature}: {scenario} ({n})")
    return lines


def render(run: Run) -> list[str]:
    """The summary of one run, as printed at the end of its pytest session."""
    lines = _table(run.results, run.total())
    if run.skips:
        lines += ["", "skipped, with the reason (cases per scenario):"]
        lines += _skip_lines(run.skips)
    if run.other_mode:
        lines += ["", f"not tagged @{run.mode} (other resolver modes; deselected): " +
                  ", ".join(f"{f} {n}" for f, n in sorted(run.other_mode.items()))]
    if run.failures:
        lines += ["", "failed:"]
        lines += [f"  {feature}: {label}" for feature, label in run.failures]
    return lines


def render_overall(runs: list[Run]) -> list[str]:
    """Every run together: one table per run, then skips and failures per run."""
    lines: list[str] = []
    for run in runs:
        head = f"{run.mode}" + (f", {run.label}" if run.label else "")
        lines += [f"[{head}] {run.title}"]
        lines += _table(run.results, run.total(), indent="  ")
        lines.append("")
    for run in runs:
        if run.skips:
            head = f"{run.mode}" + (f", {run.label}" if run.label else "")
            lines.append(f"[{head}] skipped, with the reason (cases per scenario):")
            lines += _skip_lines(run.skips)
            lines.append("")
    failures = [(run, f, label) for run in runs for f, label in run.failures]
    grand = {k: sum(run.total()[k] for run in runs) for k in COUNTS}
    lines.append("all runs: " + ", ".join(f"{grand[k]} {k}" for k in COUNTS))
    if failures:
        lines.append("failed:")
        for run, feature, label in failures:
            lines.append(f"  [{run.mode}{', ' + run.label if run.label else ''}] {feature}: {label}")
    return lines


def main(argv: list[str]) -> int:
    runs = []
    for arg in argv:
        path = Path(arg)
        if path.is_file() and path.stat().st_size:
            runs.append(Run.from_json(json.loads(path.read_text(encoding="utf-8"))))
    if not runs:
        print("no testbed results to summarise")
        return 0
    print("\n".join(render_overall(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
