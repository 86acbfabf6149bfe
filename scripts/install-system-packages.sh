#!/usr/bin/env bash
# Installs the Debian packages the test suites use, when missing: Chromium for
# browser tests, protoc for the Rust SDK example (never for Ensign itself),
# openssl for TLS test certificates, curl for readiness probes, Prometheus
# (with promtool) for the SLO rule tests, Alertmanager (with amtool) and psql
# for the kill-switch end-to-end run.
set -euo pipefail

declare -A needed=(
  [chromium]=chromium
  [protoc]="protobuf-compiler libprotobuf-dev"
  [openssl]=openssl
  [curl]=curl
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [psql]=postgresql-client
)
missing=()
for command in "${!needed[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=(${needed[$command]})
done
# protoc needs the well-known types too.
[[ -f /usr/include/google/protobuf/struct.proto ]] || missing+=(libprotobuf-dev)
if [[ ${#missing[@]} -gt 0 ]]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "system packages ready"
