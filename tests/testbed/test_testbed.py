"""Binds every feature file of the flagd-testbed to the steps in steps.py.

Which scenarios run is decided in conftest.py (those tagged with the run's mode,
@rpc or @in-process, minus what cannot run here).
"""

from pytest_bdd import scenarios

from launchpad import default_testbed_dir

_FEATURES = sorted((default_testbed_dir() / "gherkin").glob("*.feature"))
if not _FEATURES:
    raise RuntimeError(f"no feature files in {default_testbed_dir() / 'gherkin'}")

scenarios(*(str(f) for f in _FEATURES))
