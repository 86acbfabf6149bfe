"""flagd-testbed @rpc scenarios against `ensign serve` (see README.md).

Selection: scenarios tagged @rpc (feature, scenario or Examples tags). Of those,
the ones that cannot run here are kept and reported as skipped with the reason
(see SKIPS); everything not tagged @rpc is another resolver mode and is
deselected.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from pytest_bdd.scenario import scenario_wrapper_template_registry

from launchpad import Launchpad, default_ensign_binary, default_testbed_dir

pytest_plugins = ["steps"]

# (tag or feature file, reason). First match wins. Keep in step with README.md.
SKIPS: list[tuple[str, str]] = [
    ("config.feature",
     "provider option defaults and parsing only; the scenarios never contact a server"),
    ("targetURI",
     "needs the testbed's envoy proxy (custom name resolution, port 9211); "
     "openfeature-provider-flagd 0.6.1 has no targetUri option either"),
    ("unixsocket",
     "`ensign serve` has no unix-socket listener (--socket-path) and "
     "openfeature-provider-flagd 0.6.1 has no socketPath option"),
    ("forbidden",
     "needs the testbed's envoy that answers HTTP 403 (port 9212); it tests the provider's "
     "fatalStatusCodes handling against a proxy, not the server"),
    ("deprecated",
     "@deprecated, superseded by @no-default-variant (expects FLAG_NOT_FOUND where flagd >= 0.16 "
     "answers reason DEFAULT); excluded by every SDK harness"),
    ("fractional-v1",
     "legacy v1 bucketing (flagd <= 0.14); Ensign implements only v2 and v3 (docs/adr/0001)"),
    ("sync",
     "sync API scenarios (in-process providers); not part of the RPC suite"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("testbed-rpc")
    g.addoption("--ensign-bin", default=str(default_ensign_binary()),
                help="the ensign binary (default: target/debug/ensign of this repo)")
    g.addoption("--fractional-neutral", default="v3", choices=["v2", "v3"],
                help="`--fractional` for scenarios tagged neither @fractional-v2 nor @fractional-v3")
    g.addoption("--keep-workdir", action="store_true",
                help="keep the temporary working directory (flag files, certificates, ensign logs)")


def pytest_configure(config: pytest.Config) -> None:
    config._testbed_features = {}  # nodeid -> feature file name
    config._testbed_scenarios = {}  # nodeid -> scenario name
    config._testbed_not_rpc = defaultdict(int)  # feature -> deselected cases
    config._testbed_results = defaultdict(lambda: defaultdict(int))
    config._testbed_skips = []  # (feature, nodeid, reason)
    config._testbed_failures = []  # (feature, nodeid)


def _tags(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers()}


def _feature_and_scenario(item: pytest.Item) -> tuple[str, str]:
    template = scenario_wrapper_template_registry.get(getattr(item, "obj", None))
    if template is None:
        return "?", item.name
    return os.path.basename(template.feature.filename), template.name


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        tags = _tags(item)
        feature, scenario = _feature_and_scenario(item)
        if "rpc" not in tags:
            config._testbed_not_rpc[feature] += 1
            drop.append(item)
            continue
        config._testbed_features[item.nodeid] = feature
        config._testbed_scenarios[item.nodeid] = scenario
        for key, reason in SKIPS:
            if key == feature or key in tags:
                item.add_marker(pytest.mark.skip(reason=f"not runnable: {reason}"))
                break
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.fixture(scope="session")
def launchpad(request: pytest.FixtureRequest):
    binary = Path(request.config.getoption("ensign_bin"))
    if not binary.is_file():
        pytest.exit(f"ensign binary not found: {binary} (cargo build -p ensign)", returncode=2)
    workdir = Path(tempfile.mkdtemp(prefix="ensign-testbed-rpc-"))
    lp = Launchpad(binary=binary, testbed=default_testbed_dir(), workdir=workdir)
    yield lp
    lp.close()
    if request.config.getoption("keep_workdir"):
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"testbed-rpc: working directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and "launchpad" in getattr(item, "funcargs", {}):
        lp: Launchpad = item.funcargs["launchpad"]
        report.sections.append(("ensign log (tail)", lp.log_tail(60)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _CONFIG[0]
    feature = config._testbed_features.get(report.nodeid, "?")
    results = config._testbed_results[feature]
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.skipped:
            results["skipped"] += 1
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            scenario = config._testbed_scenarios.get(report.nodeid, report.nodeid)
            config._testbed_skips.append((feature, scenario, reason.removeprefix("Skipped: ")))
        elif report.passed:
            results["passed"] += 1
        else:
            results["failed"] += 1
            config._testbed_failures.append((feature, report.nodeid))
    elif report.when == "teardown" and report.failed:
        results["failed"] += 1
        config._testbed_failures.append((feature, report.nodeid + " (teardown)"))


_CONFIG: list[pytest.Config] = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG[:] = [session.config]


def _scenario_label(nodeid: str) -> str:
    name = nodeid.split("::", 1)[-1]
    return name if len(name) <= 140 else name[:137] + "..."


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    tr = terminalreporter
    results = config._testbed_results
    if not results:
        return
    gen = config.getoption("fractional_neutral")
    tr.section(f"flagd-testbed @rpc against ensign serve (untagged fractional scenarios: --fractional {gen})")
    width = max(len(f) for f in results) + 2
    tr.write_line(f"{'feature':<{width}}{'passed':>8}{'failed':>8}{'skipped':>9}")
    total = defaultdict(int)
    for feature in sorted(results):
        r = results[feature]
        tr.write_line(f"{feature:<{width}}{r['passed']:>8}{r['failed']:>8}{r['skipped']:>9}")
        for k in ("passed", "failed", "skipped"):
            total[k] += r[k]
    tr.write_line(f"{'total':<{width}}{total['passed']:>8}{total['failed']:>8}{total['skipped']:>9}")
    if config._testbed_skips:
        tr.write_line("")
        tr.write_line("skipped, with the reason (cases per scenario):")
        by_reason: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
        for feature, scenario, reason in config._testbed_skips:
            by_reason[reason][(feature, scenario)] += 1
        for reason, scenarios in by_reason.items():
            tr.write_line(f"  - {reason.removeprefix('not runnable: ')}")
            for (feature, scenario), n in scenarios.items():
                tr.write_line(f"      {feature}: {scenario} ({n})")
    not_rpc = {f: n for f, n in config._testbed_not_rpc.items() if n}
    if not_rpc and config.getoption("markexpr", "") == "" and not config.getoption("keyword", ""):
        tr.write_line("")
        tr.write_line("not tagged @rpc (other resolver modes; deselected): " +
                      ", ".join(f"{f} {n}" for f, n in sorted(not_rpc.items())))
    if config._testbed_failures:
        tr.write_line("")
        tr.write_line("failed:")
        for feature, nodeid in config._testbed_failures:
            tr.write_line(f"  {feature}: {_scenario_label(nodeid)}")
