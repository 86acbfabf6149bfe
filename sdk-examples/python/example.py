"""Evaluate feature flags served by Ensign (or flagd) with the OpenFeature Python SDK.

The flagd provider runs in RPC mode: every evaluation is a gRPC call to
flagd.evaluation.v2.Service, and an EventStream tells the provider when flags change.

    FLAGD_HOST=localhost FLAGD_PORT=8013 python example.py           # print once
    FLAGD_HOST=localhost FLAGD_PORT=8013 python example.py --watch   # and follow changes
"""

import os
import sys
import time

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.flag_evaluation import FlagEvaluationDetails


def connect() -> OpenFeatureClient:
    """Register the flagd provider and block until it is connected."""
    host = os.environ.get("FLAGD_HOST", "localhost")
    port = int(os.environ.get("FLAGD_PORT", "8013"))
    provider = FlagdProvider(host=host, port=port, resolver_type=ResolverType.RPC)
    api.set_provider_and_wait(provider)
    return api.get_client("sdk-example")


def describe(details: FlagEvaluationDetails) -> str:
    line = f"{details.flag_key:<20} {details.value!r}  (variant={details.variant}, reason={details.reason}"
    if details.error_code:
        line += f", error={details.error_code}"
    return line + ")"


def show_flags(client: OpenFeatureClient) -> None:
    # One flag of each type. The second argument is the code default, used when the
    # flag cannot be evaluated (missing, disabled, wrong type, server down).
    print(describe(client.get_boolean_details("show-welcome-banner", False)))
    print(describe(client.get_string_details("greeting", "Hello")))
    print(describe(client.get_integer_details("max-cart-items", 20)))
    print(describe(client.get_float_details("discount-rate", 0.0)))
    print(describe(client.get_object_details("theme", {"background": "#ffffff"})))
    print(describe(client.get_string_details("announcement", "")))

    # A disabled flag and a flag that does not exist both give the code default.
    print(describe(client.get_boolean_details("legacy-checkout", False)))
    print(describe(client.get_boolean_details("no-such-flag", False)))

    # Targeting: the evaluation context carries the user's attributes.
    enterprise = EvaluationContext(targeting_key="user-1", attributes={"plan": "enterprise"})
    free = EvaluationContext(targeting_key="user-2", attributes={"plan": "free"})
    print(describe(client.get_string_details("support-tier", "email support", enterprise)))
    print(describe(client.get_string_details("support-tier", "email support", free)))

    # Fractional rollout: each targeting key lands in a stable bucket.
    for user in ("alice", "bob", "carol"):
        details = client.get_string_details("checkout-experiment", "one-page", EvaluationContext(user))
        print(f"checkout-experiment for {user}: {details.variant} -> {details.value!r}")


def on_change(event: EventDetails) -> None:
    print(f"flags changed: {', '.join(event.flags_changed or [])}")
    show_flags(api.get_client("sdk-example"))


def main() -> int:
    client = connect()
    try:
        show_flags(client)
        if "--watch" in sys.argv[1:]:
            api.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
            print("watching for flag changes, Ctrl-C to stop")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
