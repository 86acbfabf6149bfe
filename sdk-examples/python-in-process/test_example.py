"""End-to-end test: the Python flagd provider in in-process mode against a live Ensign.

Run by e2e.sh, which starts `ensign serve --uri file:$FLAGS_FILE -X region=$STATIC_REGION`
and sets FLAGD_HOST / FLAGD_SYNC_PORT. The provider syncs the flags from the
sync port and evaluates them locally with openfeature-flagd-core 2.x, so these
tests check that Ensign's snapshots (and their sync_context) give the results a
flagd user expects, and that a change to the file reaches the process quickly.
"""

import importlib.metadata
import json
import os
import threading
import time

import grpc
import pytest
from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.schemas.protobuf.flagd.sync.v1 import sync_pb2, sync_pb2_grpc

from example import make_provider

HOST = os.environ.get("FLAGD_HOST", "127.0.0.1")
SYNC_PORT = int(os.environ["FLAGD_SYNC_PORT"])
FLAGS_FILE = os.environ["FLAGS_FILE"]
STATIC_REGION = os.environ.get("STATIC_REGION", "eu-west")
# data-residency's variant for each region it knows.
REGION_VARIANT = {"eu-west": "eu", "us-east": "us"}

ANONYMOUS = EvaluationContext()


@pytest.fixture(scope="module")
def client():
    api.set_provider_and_wait(make_provider(HOST, SYNC_PORT))
    yield api.get_client()
    api.shutdown()


# --- values, variants and reasons --------------------------------------------------


@pytest.mark.parametrize(
    ("method", "key", "default", "value", "variant"),
    [
        ("boolean", "new-checkout", False, True, "on"),
        ("string", "welcome-message", "Hello", "Hey there", "casual"),
        ("integer", "max-cart-items", 5, 50, "large"),
        ("float", "discount-rate", 0.0, 0.15, "standard"),
        (
            "object",
            "theme",
            {},
            {"background": "#111111", "foreground": "#eeeeee", "rounded": True},
            "dark",
        ),
    ],
)
def test_static_flags_have_their_typed_default_variant(client, method, key, default, value, variant):
    details = getattr(client, f"get_{method}_details")(key, default, ANONYMOUS)
    assert details.error_code is None, details.error_message
    assert details.value == value
    assert type(details.value) is type(value)  # an int stays an int, a float a float
    assert details.variant == variant
    assert details.reason == Reason.STATIC


def test_missing_flag_gives_the_code_default(client):
    details = client.get_string_details("no-such-flag", "code default", ANONYMOUS)
    assert details.value == "code default"
    assert details.reason == Reason.ERROR
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND


def test_disabled_flag_gives_the_code_default_with_reason_disabled(client):
    # The flag's defaultVariant is "on" (true); a disabled flag must not serve it.
    details = client.get_boolean_details("legacy-checkout", False, ANONYMOUS)
    assert details.value is False
    assert details.reason == Reason.DISABLED
    assert details.error_code is None
    assert details.variant is None


def test_flag_without_default_variant_gives_the_code_default(client):
    # defaultVariant null: Ensign sends "" in the snapshot, like flagd.
    for default in (False, True):
        details = client.get_boolean_details("beta-search", default, ANONYMOUS)
        assert details.value is default
        assert details.reason == Reason.DEFAULT
        assert details.error_code is None


@pytest.mark.parametrize(
    ("attributes", "value", "variant", "reason"),
    [
        ({"plan": "enterprise"}, "24/7 phone support", "priority", Reason.TARGETING_MATCH),
        ({"plan": "free"}, "email support", "standard", Reason.DEFAULT),
        ({}, "email support", "standard", Reason.DEFAULT),
    ],
)
def test_targeting_rule(client, attributes, value, variant, reason):
    ctx = EvaluationContext(targeting_key="user-1", attributes=attributes)
    details = client.get_string_details("support-tier", "fallback", ctx)
    assert (details.value, details.variant, details.reason) == (value, variant, reason)


# --- fractional ----------------------------------------------------------------------

# Expected variants of checkout-experiment, worked out with the reference evaluator
# (PyPI openfeature-flagd-core 2.0.0, fractional v3) from flags.json, not taken from
# Ensign. test_fractional_golden_table_matches_the_reference_core re-derives them.
FRACTIONAL_V3 = {
    "alice": "control",
    "bob": "treatment-a",
    "carol": "treatment-b",
    "dave": "control",
    "erin": "control",
}
FRACTIONAL_VALUES = {"control": "one-page", "treatment-a": "two-step", "treatment-b": "wizard"}


def reference_core() -> FlagdCore:
    core = FlagdCore()
    with open(os.path.join(os.path.dirname(__file__), "flags.json")) as f:
        core.set_flags(f.read())
    return core


def test_fractional_golden_table_matches_the_reference_core():
    assert importlib.metadata.version("openfeature-flagd-core").startswith("2."), "need the v3 evaluator"
    core = reference_core()
    for key, variant in FRACTIONAL_V3.items():
        r = core.resolve_string_value("checkout-experiment", "x", EvaluationContext(targeting_key=key))
        assert r.variant == variant, key


@pytest.mark.parametrize(("targeting_key", "variant"), sorted(FRACTIONAL_V3.items()))
def test_fractional_split_is_stable_per_user(client, targeting_key, variant):
    details = client.get_string_details(
        "checkout-experiment", "fallback", EvaluationContext(targeting_key=targeting_key)
    )
    assert details.variant == variant
    assert details.value == FRACTIONAL_VALUES[variant]
    assert details.reason == Reason.TARGETING_MATCH


# --- static context (-X) through sync_context ---------------------------------------------


def test_sync_stream_carries_the_static_context():
    """The first SyncFlags message: a full snapshot plus sync_context = the -X values."""
    with grpc.insecure_channel(f"{HOST}:{SYNC_PORT}") as channel:
        stub = sync_pb2_grpc.FlagSyncServiceStub(channel)
        stream = stub.SyncFlags(sync_pb2.SyncFlagsRequest(), timeout=5)
        first = next(stream)
        stream.cancel()
    assert dict(first.sync_context) == {"region": STATIC_REGION}
    snapshot = json.loads(first.flag_configuration)
    with open(FLAGS_FILE) as f:
        assert set(snapshot["flags"]) == set(json.load(f)["flags"])


def test_static_context_reaches_in_process_rules(client):
    # The caller says nothing about the region; the server's -X region=... does.
    details = client.get_string_details("data-residency", "fallback", EvaluationContext(targeting_key="u"))
    assert details.variant == REGION_VARIANT[STATIC_REGION]
    assert details.reason == Reason.TARGETING_MATCH


def test_static_context_arrives_without_get_metadata():
    """With the deprecated GetMetadata call switched off, sync_context alone must carry it."""
    provider = FlagdProvider(
        resolver_type=ResolverType.IN_PROCESS,
        host=HOST,
        port=SYNC_PORT,
        deadline_ms=2000,
        sync_metadata_disabled=True,
    )
    api.set_provider_and_wait(provider, domain="no-get-metadata")
    try:
        details = api.get_client("no-get-metadata").get_string_details("data-residency", "fallback", ANONYMOUS)
        assert details.reason == Reason.TARGETING_MATCH
        assert details.variant == REGION_VARIANT[STATIC_REGION]
    finally:
        provider.shutdown()


# --- live updates ------------------------------------------------------------------------


def rewrite_announcement(default_variant: str, atomic: bool) -> None:
    with open(FLAGS_FILE) as f:
        doc = json.load(f)
    doc["flags"]["announcement"]["defaultVariant"] = default_variant
    text = json.dumps(doc, indent=2)
    if atomic:  # write a sibling and rename it over the file, as deploy tools do
        tmp = FLAGS_FILE + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, FLAGS_FILE)
    else:  # overwrite in place, as an editor does
        with open(FLAGS_FILE, "w") as f:
            f.write(text)


@pytest.mark.parametrize(
    ("new_variant", "new_value", "atomic"),
    [("v2", "Summer sale is on", False), ("v1", "Welcome to the shop", True)],
    ids=["in-place-write", "atomic-rename"],
)
def test_file_change_reaches_the_process_within_a_second(client, new_variant, new_value, atomic):
    changed = threading.Event()
    seen: list[EventDetails] = []

    def on_change(details: EventDetails) -> None:
        if "announcement" in (details.flags_changed or []):
            seen.append(details)
            changed.set()

    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    try:
        started = time.monotonic()
        rewrite_announcement(new_variant, atomic)
        assert changed.wait(1.0), "no PROVIDER_CONFIGURATION_CHANGED for announcement within 1 s"
        elapsed = time.monotonic() - started
        details = client.get_string_details("announcement", "fallback", ANONYMOUS)
        assert (details.value, details.variant) == (new_value, new_variant)
        assert seen[0].flags_changed == ["announcement"]
        print(f"change seen after {elapsed * 1000:.0f} ms")
    finally:
        client.remove_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)


def test_flags_file_is_back_to_the_original():
    # The live-update tests end on the original defaultVariant.
    here = os.path.join(os.path.dirname(__file__), "flags.json")
    with open(here) as a, open(FLAGS_FILE) as b:
        assert json.load(a) == json.load(b)
