"""End-to-end test of example.py against a running Ensign (or flagd).

Needs FLAGD_HOST / FLAGD_PORT (the server) and FLAGS_FILE: the file that server
watches, which the last test rewrites. e2e.sh sets all three up.
"""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from openfeature import api
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode

import example

HERE = Path(__file__).resolve().parent
FLAGS = json.loads((HERE.parent / "flags.json").read_text())
EXPECTED_FRACTIONAL = json.loads((HERE.parent / "fractional-expected.json").read_text())


def variant_value(flag_key: str, variant: str):
    return FLAGS["flags"][flag_key]["variants"][variant]


@pytest.fixture(scope="module")
def client():
    client = example.connect()
    yield client
    api.shutdown()


def test_example_program_runs():
    result = subprocess.run(
        [sys.executable, str(HERE / "example.py")],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "greeting             'Hey there'  (variant=casual, reason=STATIC)" in result.stdout
    assert "support-tier         '24/7 phone support'  (variant=priority, reason=TARGETING_MATCH)" in result.stdout
    assert "no-such-flag         False  (variant=None, reason=ERROR, error=FLAG_NOT_FOUND)" in result.stdout


@pytest.mark.parametrize(
    ("flag_key", "method", "default", "expected_value", "expected_type", "expected_variant"),
    [
        ("show-welcome-banner", "get_boolean_details", False, True, bool, "on"),
        ("greeting", "get_string_details", "Hello", "Hey there", str, "casual"),
        ("max-cart-items", "get_integer_details", 20, 50, int, "large"),
        ("discount-rate", "get_float_details", 0.0, 0.15, float, "standard"),
        (
            "theme", "get_object_details", {},
            {"background": "#111111", "foreground": "#eeeeee", "rounded": True}, dict, "dark",
        ),
    ],
    ids=["boolean", "string", "integer", "float", "object"],
)
def test_static_flag_of_each_type(client, flag_key, method, default, expected_value, expected_type, expected_variant):
    details = getattr(client, method)(flag_key, default)
    assert details.error_code is None, details.error_message
    assert type(details.value) is expected_type
    assert details.value == expected_value
    assert details.variant == expected_variant
    assert details.reason == "STATIC"


def test_missing_flag_returns_code_default(client):
    details = client.get_string_details("no-such-flag", "code default")
    assert details.value == "code default"
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND
    assert details.reason == "ERROR"


def test_disabled_flag_returns_code_default(client):
    # flags.json has defaultVariant "on" (true): a disabled flag must not serve it.
    details = client.get_boolean_details("legacy-checkout", False)
    assert details.value is False
    assert details.reason == "DISABLED"
    assert details.variant is None
    assert details.error_code is None


def test_targeting_matching_context(client):
    context = EvaluationContext(targeting_key="user-1", attributes={"plan": "enterprise"})
    details = client.get_string_details("support-tier", "none", context)
    assert (details.value, details.variant, details.reason) == ("24/7 phone support", "priority", "TARGETING_MATCH")


def test_targeting_non_matching_context(client):
    # The rule returns null for other plans, so the flag's defaultVariant is served.
    context = EvaluationContext(targeting_key="user-2", attributes={"plan": "free"})
    details = client.get_string_details("support-tier", "none", context)
    assert (details.value, details.variant, details.reason) == ("email support", "standard", "DEFAULT")


def test_expected_fractional_table_matches_reference_evaluator():
    # The reference evaluator (openfeature-flagd-core 2.x, fractional v3) decides what
    # the right buckets are; Ensign's answers are compared with this table below.
    core = FlagdCore()
    core.set_flags(json.dumps(FLAGS))
    flag_key = EXPECTED_FRACTIONAL["flag"]
    computed = {
        key: core.resolve_string_value(flag_key, "", EvaluationContext(targeting_key=key)).variant
        for key in EXPECTED_FRACTIONAL["variants"]
    }
    assert computed == EXPECTED_FRACTIONAL["variants"], "update fractional-expected.json"
    assert len(set(computed.values())) == 3, "the keys should cover every variant"


@pytest.mark.parametrize(("targeting_key", "expected_variant"), sorted(EXPECTED_FRACTIONAL["variants"].items()))
def test_fractional_rollout(client, targeting_key, expected_variant):
    flag_key = EXPECTED_FRACTIONAL["flag"]
    details = client.get_string_details(flag_key, "none", EvaluationContext(targeting_key=targeting_key))
    assert details.variant == expected_variant
    assert details.value == variant_value(flag_key, expected_variant)
    assert details.reason == "TARGETING_MATCH"


def test_configuration_change_arrives_within_one_second(client):
    flags_file = Path(os.environ["FLAGS_FILE"])
    before = client.get_string_details("announcement", "")
    assert (before.value, before.variant) == ("Welcome to the shop", "v1")

    received = threading.Event()
    seen: dict = {}

    def on_change(event: EventDetails) -> None:
        if "announcement" in (event.flags_changed or []):
            seen.setdefault("at", time.monotonic())
            seen.setdefault("flags_changed", event.flags_changed)
            received.set()

    api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    try:
        changed = json.loads(flags_file.read_text())
        changed["flags"]["announcement"]["defaultVariant"] = "v2"
        written_at = time.monotonic()
        flags_file.write_text(json.dumps(changed, indent=2))

        assert received.wait(timeout=5), "no PROVIDER_CONFIGURATION_CHANGED within 5 s"
        delay = seen["at"] - written_at
        print(f"PROVIDER_CONFIGURATION_CHANGED arrived {delay * 1000:.1f} ms after the write")
        assert delay < 1.0, f"event arrived {delay:.3f} s after the write"
    finally:
        api.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)

    after = client.get_string_details("announcement", "")
    assert (after.value, after.variant, after.reason) == ("Summer sale is on", "v2", "STATIC")
    # Only the rewritten flag changed, so only it is reported.
    assert seen["flags_changed"] == ["announcement"]
