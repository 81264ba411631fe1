#!/usr/bin/env bash
# Installs a Debian package the tests need, unless its commands are already on PATH.
#
# Usage: scripts/install-debian.sh PACKAGE COMMAND...
#   prometheus  prometheus promtool   the alert rules' checks and unit tests, a real Prometheus
#   chromium    chromium              the demo shop driven in a headless browser (test_browser.py)
#   nodejs npm  node npm              the browser tracker's size check (terser, pinned in tracker/)
#
# Idempotent: when every COMMAND is on PATH it does nothing. Debian's prometheus package also
# installs a system service, which nothing here uses: the tests start their own processes on
# 127.0.0.1 with free ports and temporary directories, and stop them by their PIDs.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: $0 PACKAGE[,PACKAGE...] COMMAND..." >&2
    exit 2
fi
packages=${1//,/ }
shift

missing=()
for command in "$@"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("$command")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-debian: ${missing[*]} not found; install with:" \
        "sudo apt-get install --no-install-recommends $packages" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $packages >/dev/null

for command in "$@"; do
    if ! command -v "$command" >/dev/null 2>&1; then
        echo "install-debian: installed $packages, but $command is not on PATH" >&2
        exit 1
    fi
done
echo "install-debian: $packages installed"
