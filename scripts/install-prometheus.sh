#!/usr/bin/env bash
# Installs Prometheus (the server and promtool) from Debian's packages, for
# the tests that check and unit-test the alerting rules (`promtool check rules`,
# `promtool test rules`) and run a real Prometheus against a real worker.
#
# Idempotent: when both `prometheus` and `promtool` are on PATH it does nothing.
#
# Debian's package also installs a `prometheus` system service. Nothing in this
# project uses it: the tests start their own Prometheus binary on 127.0.0.1 with
# a free port and a temporary data directory, and stop it by its PID.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-prometheus: prometheus/promtool not found; install them with:" \
        "sudo apt-get install --no-install-recommends prometheus" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null

for tool in prometheus promtool; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "install-prometheus: installed Debian's prometheus package, but $tool is not on PATH" >&2
        exit 1
    fi
done
echo "install-prometheus: $(prometheus --version 2>&1 | head -n 1)"
