#!/usr/bin/env bash
# Installs Chromium from Debian's packages, for the test that drives the demo shop in a real
# headless browser (tests/integration/test_browser.py, over the DevTools protocol) and for
# scripts/shop_screenshot.py.
#
# Idempotent: when `chromium` is on PATH it does nothing.
#
# The tests start their own `chromium --headless=new` with a temporary profile and a free
# DevTools port, and stop it by its PID.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-chromium: chromium not found; install it with:" \
        "sudo apt-get install --no-install-recommends chromium" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null

if ! command -v chromium >/dev/null 2>&1; then
    echo "install-chromium: installed Debian's chromium package, but chromium is not on PATH" >&2
    exit 1
fi
echo "install-chromium: $(chromium --version 2>/dev/null | head -n 1)"
