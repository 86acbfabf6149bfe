#!/usr/bin/env bash
# The flagd-testbed's @rpc scenarios only; kept for existing callers.
# Same as `scripts/testbed.sh rpc [PYTEST ARGS...]` (see tests/testbed/README.md).
exec bash "$(dirname "${BASH_SOURCE[0]}")/testbed.sh" rpc "$@"
