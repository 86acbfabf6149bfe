"""Evaluate feature flags on Ensign over OFREP (the OpenFeature Remote Evaluation Protocol).

Each evaluation is one HTTP call, `POST /ofrep/v1/evaluate/flags/{key}` on
Ensign's OFREP port (8016 by default), carrying the evaluation context as JSON.
The server evaluates; nothing is cached here. When Ensign runs with
`--ofrep-auth-token T`, every request must carry `Authorization: Bearer T`
(or `X-API-Key: T`).

    python example.py                                   # http://localhost:8016
    OFREP_ENDPOINT=http://flags.internal:8016 OFREP_TOKEN=s3cret python example.py
"""

import os
import sys

from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext


def make_provider(endpoint: str | None = None, token: str | None = None) -> OFREPProvider:
    """An OFREP provider for Ensign's OFREP port, sending the token if there is one."""
    endpoint = endpoint or os.environ.get("OFREP_ENDPOINT", "http://localhost:8016")
    token = token if token is not None else os.environ.get("OFREP_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # headers_factory runs before every request, so a rotating token works too.
    return OFREPProvider(endpoint, headers_factory=lambda: dict(headers), timeout=2.0)


def main() -> int:
    api.set_provider_and_wait(make_provider())
    client = api.get_client()
    user = EvaluationContext(targeting_key="user-42", attributes={"plan": "enterprise"})
    evaluations = [
        client.get_boolean_details("new-checkout", False, user),
        client.get_string_details("welcome-message", "Hello", user),
        client.get_integer_details("max-cart-items", 5, user),
        client.get_float_details("discount-rate", 0.0, user),
        client.get_object_details("theme", {}, user),
        client.get_string_details("support-tier", "email support", user),
        client.get_string_details("checkout-experiment", "one-page", user),
        client.get_string_details("no-such-flag", "code default", user),
    ]
    for d in evaluations:
        outcome = f"error={d.error_code.value}: {d.error_message}" if d.error_code else f"reason={d.reason}"
        print(f"{d.flag_key:20} {d.value!r:50} variant={d.variant} {outcome}")
    api.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
