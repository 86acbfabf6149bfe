"""flagd-testbed scenarios against `ensign serve`, in one resolver mode per run (see README.md).

`--mode rpc|in-process` picks the provider's resolver and the scenarios: those
tagged with the mode (@rpc or @in-process; feature, scenario or Examples tags).
Of those, the ones that cannot run here are kept and reported as skipped with
the reason (see SKIPS); everything not tagged with the mode belongs to another
resolver mode and is deselected.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest
from pytest_bdd.scenario import scenario_wrapper_template_registry

import summary
from launchpad import Launchpad, LaunchpadError, default_ensign_binary, default_testbed_dir

pytest_plugins = ["steps"]

MODES = ("rpc", "in-process")

# Per mode: (tag or feature file, reason). First match wins. Keep in step with README.md.
_COMMON_SKIPS: list[tuple[str, str]] = [
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
]
SKIPS: dict[str, list[tuple[str, str]]] = {
    "rpc": _COMMON_SKIPS + [
        ("sync",
         "sync API scenarios (in-process providers); not part of the RPC suite"),
    ],
    "in-process": _COMMON_SKIPS + [
        ("fractional-v2",
         "the in-process provider computes `fractional` itself with openfeature-flagd-core 2.x, "
         "which buckets with v3; v2 vectors cannot come out of it whatever the server sends "
         "(Ensign's v2 is checked in RPC mode)"),
    ],
}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("testbed")
    g.addoption("--mode", default="rpc", choices=MODES,
                help="resolver mode of the provider, and which scenarios run (@rpc or @in-process)")
    g.addoption("--ensign-bin", default=str(default_ensign_binary()),
                help="the ensign binary (default: target/debug/ensign of this repo)")
    g.addoption("--fractional-neutral", default="v3", choices=["v2", "v3"],
                help="`--fractional` for scenarios tagged neither @fractional-v2 nor @fractional-v3 "
                     "(matters in RPC mode; in-process providers compute fractional themselves)")
    g.addoption("--keep-workdir", action="store_true",
                help="keep the temporary working directory (flag files, certificates, ensign logs)")
    g.addoption("--summary-json", default=None, metavar="PATH",
                help="also write the per-feature counts, skips and failures to PATH (summary.py reads them)")
    g.addoption("--run-label", default="",
                help="a name for this run in the --summary-json output, e.g. `pass 2/2`")


def pytest_configure(config: pytest.Config) -> None:
    config._testbed_features = {}  # nodeid -> feature file name
    config._testbed_scenarios = {}  # nodeid -> scenario name
    config._testbed_other_mode = defaultdict(int)  # feature -> deselected cases
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
    mode = config.getoption("mode")
    keep, drop = [], []
    for item in items:
        tags = _tags(item)
        feature, scenario = _feature_and_scenario(item)
        if mode not in tags:
            config._testbed_other_mode[feature] += 1
            drop.append(item)
            continue
        config._testbed_features[item.nodeid] = feature
        config._testbed_scenarios[item.nodeid] = scenario
        for key, reason in SKIPS[mode]:
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
    workdir = Path(tempfile.mkdtemp(prefix=f"ensign-testbed-{request.config.getoption('mode')}-"))
    try:
        lp = Launchpad(binary=binary, testbed=default_testbed_dir(), workdir=workdir,
                       mode=request.config.getoption("mode"))
    except LaunchpadError as e:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.exit(str(e), returncode=2)
    yield lp
    lp.close()
    if request.config.getoption("keep_workdir"):
        tr = request.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(f"testbed: working directory kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    # A LaunchpadError's message carries the log tail already.
    carries_log = call.excinfo is not None and call.excinfo.errisinstance(LaunchpadError)
    if report.failed and not carries_log and "launchpad" in getattr(item, "funcargs", {}):
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


def _run_title(config: pytest.Config) -> str:
    mode = config.getoption("mode")
    if mode == "in-process":
        return ("flagd-testbed @in-process against ensign serve (sync API; fractional is computed "
                "by the provider's flagd-core 2.x, i.e. v3)")
    gen = config.getoption("fractional_neutral")
    return f"flagd-testbed @rpc against ensign serve (untagged fractional scenarios: --fractional {gen})"


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    if not config._testbed_results:
        return
    narrowed = bool(config.getoption("markexpr", "") or config.getoption("keyword", ""))
    run = summary.Run(
        mode=config.getoption("mode"),
        title=_run_title(config),
        results={f: dict(r) for f, r in config._testbed_results.items()},
        skips=[list(s) for s in config._testbed_skips],
        failures=[[f, _scenario_label(n)] for f, n in config._testbed_failures],
        other_mode={} if narrowed else {f: n for f, n in config._testbed_other_mode.items() if n},
        label=config.getoption("run_label"),
    )
    tr = terminalreporter
    tr.section(run.title)
    for line in summary.render(run):
        tr.write_line(line)
    path = config.getoption("summary_json")
    if path:
        Path(path).write_text(json.dumps(run.to_json(), indent=1), encoding="utf-8")
