"""Evaluate feature flags in-process, with the flag definitions synced from Ensign.

The flagd provider in in-process mode opens one long-lived gRPC stream to
Ensign's sync port (`flagd.sync.v1.FlagSyncService/SyncFlags`, 8015 by default),
keeps the latest flag definitions in memory and evaluates every flag locally:
no network call per evaluation. A change to the flags on the server arrives as a
new snapshot on that stream and raises PROVIDER_CONFIGURATION_CHANGED.

    python example.py                      # localhost:8015
    FLAGD_HOST=flags.internal FLAGD_SYNC_PORT=8015 python example.py
    python example.py --watch              # also print every change until Ctrl-C
"""

import os
import sys
import threading

from openfeature import api
from openfeature.contrib.provider.flagd import FlagdProvider
from openfeature.contrib.provider.flagd.config import ResolverType
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent


def make_provider(host: str | None = None, port: int | None = None) -> FlagdProvider:
    """An in-process flagd provider reading from Ensign's sync port."""
    return FlagdProvider(
        resolver_type=ResolverType.IN_PROCESS,
        host=host or os.environ.get("FLAGD_HOST", "localhost"),
        port=port or int(os.environ.get("FLAGD_SYNC_PORT", "8015")),
        # How long set_provider_and_wait may wait for the first snapshot.
        deadline_ms=2000,
    )


def show(client, user: EvaluationContext) -> None:
    """Prints a few flags of each type for one user."""
    evaluations = [
        client.get_boolean_details("new-checkout", False, user),
        client.get_string_details("welcome-message", "Hello", user),
        client.get_integer_details("max-cart-items", 5, user),
        client.get_float_details("discount-rate", 0.0, user),
        client.get_object_details("theme", {}, user),
        client.get_string_details("support-tier", "email support", user),
        client.get_string_details("checkout-experiment", "one-page", user),
        # Targets the server's static context (`ensign serve -X region=...`),
        # which reaches this process through the sync stream.
        client.get_string_details("data-residency", "nearest", user),
        client.get_boolean_details("legacy-checkout", False, user),  # DISABLED
    ]
    for d in evaluations:
        print(f"{d.flag_key:20} {d.value!r:50} variant={d.variant} reason={d.reason}")


def main() -> int:
    api.set_provider_and_wait(make_provider())
    client = api.get_client()
    user = EvaluationContext(targeting_key="user-42", attributes={"plan": "enterprise"})
    show(client, user)

    if "--watch" in sys.argv:

        def on_change(details: EventDetails) -> None:
            print(f"\nflags changed: {sorted(details.flags_changed or [])}")
            show(client, user)

        client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass

    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
