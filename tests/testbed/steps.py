"""Step definitions for the flagd-testbed scenarios, in RPC and in-process mode.

Every evaluation goes through the OpenFeature Python SDK and the real
`openfeature-provider-flagd` against `ensign serve`. The resolver is the run's
mode (`--mode`):

- `rpc`: `flagd.evaluation.v2.Service` over gRPC on the evaluation port,
  EventStream for events; Ensign evaluates.
- `in-process`: `flagd.sync.v1.FlagSyncService` (GetMetadata, then the
  SyncFlags stream) on Ensign's sync port; the provider evaluates the synced
  flags itself with flagd-core, merging the stream's `sync_context` into every
  evaluation context.

Step semantics follow the testbed's intent; where a step waits, the limits are
those of the SDK harnesses (30 s for "... should have been executed" and
"... event was fired" unless the step gives its own limit).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import CacheType, ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.provider import ProviderStatus

from launchpad import Launchpad, LaunchpadError, free_port

EVENT_TIMEOUT_MS = 30_000
PROVIDER_READY_TIMEOUT_S = 10.0

# Resolver mode (--mode) -> the provider's resolver type.
RESOLVERS = {
    "rpc": ResolverType.RPC,
    "in-process": ResolverType.IN_PROCESS,
}

# The option set the SDK harnesses give every provider, in both modes
# (flagd-protocol.md §5); the resolver type and port come from the mode.
BASE_OPTIONS = {
    "host": "localhost",
    "deadline_ms": 1000,
    "stream_deadline_ms": 0,
    "retry_backoff_ms": 1000,
    "retry_backoff_max_ms": 1000,
    "retry_grace_period": 2,
}

# "a <name> flagd provider" -> testbed launchpad configuration.
PROVIDER_CONFIGS = {
    "stable": "default",
    "ssl": "ssl",
    "metadata": "metadata",
    "syncpayload": "sync-payload",
}

EVENTS = {
    "ready": ProviderEvent.PROVIDER_READY,
    "error": ProviderEvent.PROVIDER_ERROR,
    "stale": ProviderEvent.PROVIDER_STALE,
    "change": ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
}

# Gherkin option names (camelCase, testbed config.feature) -> provider kwargs.
OPTION_NAMES = {
    "cache": "cache",
    "selector": "selector",
    "deadlineMs": "deadline_ms",
    "streamDeadlineMs": "stream_deadline_ms",
    "retryBackoffMs": "retry_backoff_ms",
    "retryBackoffMaxMs": "retry_backoff_max_ms",
    "retryGracePeriod": "retry_grace_period",
    "keepAliveTime": "keep_alive_time",
    "maxCacheSize": "max_cache_size",
    "fatalStatusCodes": "fatal_status_codes",
    "resolver": "resolver_type",
    "host": "host",
    "port": "port",
    "tls": "tls",
    "certPath": "cert_path",
    "providerId": "provider_id",
}


def convert_option(type_name: str, value: str) -> Any:
    if type_name == "CacheType":
        return CacheType(value.lower())
    if type_name == "ResolverType":
        return ResolverType(value.lower())
    if type_name in ("Integer", "Long"):
        return int(value)
    if type_name == "Boolean":
        return value.lower() == "true"
    if type_name == "StringList":
        return [v.strip() for v in value.split(",") if v.strip()]
    if type_name == "String":
        return value
    raise ValueError(f"unknown option type {type_name!r}")


def convert_value(type_name: str, value: str) -> Any:
    """A typed value from its Gherkin text (flag defaults, context values, expectations)."""
    if type_name == "Boolean":
        if value.lower() not in ("true", "false"):
            raise ValueError(f"not a Boolean: {value!r}")
        return value.lower() == "true"
    if type_name in ("Integer", "Long"):
        return int(value)
    if type_name == "Float":
        return float(value)
    if type_name == "Object":
        return json.loads(value)
    if type_name == "String":
        return value
    raise ValueError(f"unknown value type {type_name!r}")


@dataclass
class World:
    """State of one scenario."""

    launchpad: Launchpad
    mode: str
    options: dict = field(default_factory=dict)
    client: OpenFeatureClient | None = None
    flag_type: str | None = None
    flag_key: str | None = None
    default_value: Any = None
    targeting_key: str | None = None
    attributes: dict = field(default_factory=dict)
    details: Any = None
    # (event name, details) in arrival order; `cursor` marks what steps consumed.
    events: list = field(default_factory=list)
    events_lock: threading.Lock = field(default_factory=threading.Lock)
    cursor: int = 0
    last_event: EventDetails | None = None

    def require_client(self) -> OpenFeatureClient:
        if self.client is None:
            raise AssertionError("no provider was set up in this scenario")
        return self.client

    def check_background(self) -> None:
        err = self.launchpad.background_error
        if err is not None:
            self.launchpad.background_error = None
            raise AssertionError(f"delayed restart of ensign failed: {err}")

    def wait_for_event(self, name: str, timeout_ms: int) -> EventDetails:
        """The first `name` event after the last consumed one (waits); consumes it."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            with self.events_lock:
                for i in range(self.cursor, len(self.events)):
                    if self.events[i][0] == name:
                        self.cursor = i + 1
                        return self.events[i][1]
                seen = [e[0] for e in self.events]
            self.check_background()
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"no {name} event within {timeout_ms} ms (events so far: {seen}, "
                    f"consumed up to #{self.cursor}; provider status "
                    f"{self.client.get_provider_status() if self.client else None})")
            time.sleep(0.05)


@pytest.fixture
def world(launchpad: Launchpad, request: pytest.FixtureRequest):
    tags = {m.name for m in request.node.iter_markers()}
    if "fractional-v2" in tags:
        launchpad.fractional = "v2"
    elif "fractional-v3" in tags:
        launchpad.fractional = "v3"
    else:
        launchpad.fractional = request.config.getoption("fractional_neutral")
    w = World(launchpad=launchpad, mode=request.config.getoption("mode"))
    yield w
    # Scenario teardown: drop provider, handlers and any pending delayed restart.
    api.shutdown()
    launchpad.stop_pending_restart()
    err, launchpad.background_error = launchpad.background_error, None
    if err is not None:
        raise AssertionError(f"delayed restart of ensign failed: {err}")


# --- options and providers -----------------------------------------------------


@given(parsers.re(r'an option "(?P<name>[^"]*)" of type "(?P<type_name>[^"]*)" with value "(?P<value>[^"]*)"'))
def option(world: World, name: str, type_name: str, value: str) -> None:
    if name not in OPTION_NAMES:
        raise NotImplementedError(f"provider option {name!r} is not supported by openfeature-provider-flagd")
    world.options[OPTION_NAMES[name]] = convert_option(type_name, value)


@given(parsers.re(r"a (?P<name>\S+) flagd provider"))
def flagd_provider(world: World, name: str) -> None:
    lp = world.launchpad
    # RPC providers talk to the evaluation port, in-process ones to the sync port.
    options = dict(BASE_OPTIONS, resolver_type=RESOLVERS[world.mode], port=lp.provider_port)
    wait_ready = True
    if name == "unavailable":
        # Nothing listens there: the provider must report an error.
        options["port"] = free_port()
        wait_ready = False
    elif name in PROVIDER_CONFIGS:
        if name == "ssl":
            options["tls"] = True
            options["cert_path"] = str(lp.ca_cert)
        lp.start(PROVIDER_CONFIGS[name])
    else:
        raise NotImplementedError(f"no way to provide a {name!r} flagd provider here")
    options.update(world.options)
    domain = f"testbed-{world.mode}"
    api.set_provider(FlagdProvider(**options), domain)
    world.client = api.get_client(domain)
    if wait_ready:
        deadline = time.monotonic() + PROVIDER_READY_TIMEOUT_S
        while world.client.get_provider_status() != ProviderStatus.READY:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"provider not READY within {PROVIDER_READY_TIMEOUT_S} s "
                    f"(status {world.client.get_provider_status()}); ensign log:\n{lp.log_tail()}")
            time.sleep(0.02)


@then(parsers.re(r"the client should be in (?P<status>\S+) state"))
def client_state(world: World, status: str) -> None:
    assert world.require_client().get_provider_status() == ProviderStatus[status.upper()]


# --- flag and context -------------------------------------------------------------


@given(parsers.re(r'a (?P<type_name>\w+)-flag with key "(?P<key>[^"]*)" and a default value "(?P<default>[^"]*)"'))
def a_flag(world: World, type_name: str, key: str, default: str) -> None:
    world.flag_type = type_name
    world.flag_key = key
    world.default_value = convert_value(type_name, default)


@given(parsers.re(
    r'a context containing a key "(?P<key>[^"]*)", with type "(?P<type_name>[^"]*)" and with value "(?P<value>.*)"$'))
def context_key(world: World, key: str, type_name: str, value: str) -> None:
    # A key "targetingKey" stays a plain attribute: the scenarios that use it pass
    # a non-string targeting key, which the SDK's targeting_key cannot hold; the
    # RPC provider writes the attributes over its `targetingKey` field. (In-process,
    # flagd-core 2.x overwrites a `targetingKey` attribute with the SDK's targeting
    # key; the in-process scenarios of this testbed never set one this way.)
    world.attributes[key] = convert_value(type_name, value)


@given(parsers.re(
    r'a context containing a nested property with outer key "(?P<outer>[^"]*)" and inner key "(?P<inner>[^"]*)", '
    r'with value "(?P<value>.*)"$'))
def context_nested(world: World, outer: str, inner: str, value: str) -> None:
    world.attributes.setdefault(outer, {})[inner] = value


@given(parsers.re(r'a context containing a targeting key with value "(?P<value>.*)"$'))
def context_targeting_key(world: World, value: str) -> None:
    world.targeting_key = value


@given("the flag was evaluated with details")
@when("the flag was evaluated with details")
def evaluate(world: World) -> None:
    world.check_background()
    client = world.require_client()
    if world.flag_key is None:
        raise AssertionError("no flag was given")
    ctx = EvaluationContext(targeting_key=world.targeting_key, attributes=dict(world.attributes))
    getters = {
        "Boolean": client.get_boolean_details,
        "String": client.get_string_details,
        "Integer": client.get_integer_details,
        "Float": client.get_float_details,
        "Object": client.get_object_details,
    }
    world.details = getters[world.flag_type](world.flag_key, world.default_value, ctx)


def _describe(details: Any) -> str:
    return (f"value={details.value!r} variant={details.variant!r} reason={_reason(details)!r} "
            f"error_code={_error_code(details)!r} error_message={details.error_message!r}")


def _reason(details: Any) -> str | None:
    r = details.reason
    return getattr(r, "value", r)


def _error_code(details: Any) -> str | None:
    c = details.error_code
    return getattr(c, "value", c)


@then(parsers.re(r'the resolved details value should be "(?P<expected>.*)"$'))
def value_is(world: World, expected: str) -> None:
    d = world.details
    want = convert_value(world.flag_type, expected)
    got = d.value
    if world.flag_type == "Float":
        ok = isinstance(got, (int, float)) and float(got) == want
    elif world.flag_type == "Integer":
        ok = isinstance(got, int) and not isinstance(got, bool) and got == want
    else:
        ok = got == want and type(got) is type(want)
    assert ok, f"{world.flag_key}: expected value {want!r}, got {_describe(d)}"


@then(parsers.re(r'the reason should be "(?P<expected>[^"]*)"'))
def reason_is(world: World, expected: str) -> None:
    d = world.details
    assert _reason(d) == expected, f"{world.flag_key}: expected reason {expected!r}, got {_describe(d)}"


@then(parsers.re(r'the error-code should be "(?P<expected>[^"]*)"'))
def error_code_is(world: World, expected: str) -> None:
    d = world.details
    want = ErrorCode(expected).value if expected else None
    assert _error_code(d) == want, f"{world.flag_key}: expected error code {want!r}, got {_describe(d)}"


@then(parsers.re(r'the variant should be "(?P<expected>[^"]*)"'))
def variant_is(world: World, expected: str) -> None:
    d = world.details
    assert d.variant == expected, f"{world.flag_key}: expected variant {expected!r}, got {_describe(d)}"


@then("the resolved metadata is empty")
def metadata_empty(world: World) -> None:
    assert not world.details.flag_metadata, f"metadata: {dict(world.details.flag_metadata)!r}"


@then("the resolved metadata should contain")
def metadata_contains(world: World, datatable: list[list[str]]) -> None:
    got = dict(world.details.flag_metadata or {})
    header, *rows = datatable
    col = {name: i for i, name in enumerate(header)}
    for row in rows:
        key, type_name, value = row[col["key"]], row[col["metadata_type"]], row[col["value"]]
        want = convert_value(type_name, value)
        assert key in got and got[key] == want, f"metadata {key}: expected {want!r}, got {got!r}"


# --- events ---------------------------------------------------------------------------


@given(parsers.re(r"a (?P<name>\w+) event handler"))
def event_handler(world: World, name: str) -> None:
    client = world.require_client()

    def handler(details: EventDetails) -> None:
        with world.events_lock:
            world.events.append((name, details))

    client.add_handler(EVENTS[name], handler)


@given(parsers.re(r"a (?P<name>\w+) event was fired"))
@when(parsers.re(r"a (?P<name>\w+) event was fired"))
def event_fired(world: World, name: str) -> None:
    world.last_event = world.wait_for_event(name, EVENT_TIMEOUT_MS)


@then(parsers.re(r"the (?P<name>\w+) event handler should have been executed within (?P<ms>\d+)ms"))
def handler_ran_within(world: World, name: str, ms: str) -> None:
    world.last_event = world.wait_for_event(name, int(ms))


@then(parsers.re(r"the (?P<name>\w+) event handler should have been executed$"))
def handler_ran(world: World, name: str) -> None:
    world.last_event = world.wait_for_event(name, EVENT_TIMEOUT_MS)


@then("the flag should be part of the event payload")
def flag_in_payload(world: World) -> None:
    event = world.last_event
    assert event is not None, "no event was consumed"
    assert world.flag_key in (event.flags_changed or []), (
        f"{world.flag_key!r} not in flags_changed={event.flags_changed!r}")


# --- launchpad actions --------------------------------------------------------------------


@when(parsers.re(r"the connection is lost for (?P<seconds>\d+)s"))
def connection_lost(world: World, seconds: str) -> None:
    world.launchpad.restart(int(seconds))


@given("the flag was modified")
@when("the flag was modified")
def flag_modified(world: World) -> None:
    try:
        world.launchpad.change()
    except LaunchpadError as e:
        raise AssertionError(str(e)) from None
