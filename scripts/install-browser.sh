#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the station's browser test (browsers cannot be
# downloaded by test tools here; the distribution's packages can). Idempotent.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-browser: chromium/chromedriver missing; install them (Debian: apt-get install" \
       "chromium chromium-driver). The browser test skips without them outside CI." >&2
  exit 0
fi
echo "install-browser: installing Debian's chromium and chromium-driver ..."
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
