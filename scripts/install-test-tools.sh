#!/usr/bin/env bash
# Programs the tests drive that pip cannot install, from Debian's packages (test tools
# cannot download their own here; the distribution's packages can). Idempotent.
#  - Chromium and ChromeDriver: the station's browser tests.
#  - GStreamer's RTSP server with its Python bindings (for /usr/bin/python3): a real RTSP
#    camera for the producer's network-source test.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null; then
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base
            gstreamer1.0-plugins-good)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-test-tools: missing ${missing[*]}; install them (Debian: apt-get install" \
       "${missing[*]}). The tests that need them skip without them outside CI." >&2
  exit 0
fi
echo "install-test-tools: installing Debian's ${missing[*]} ..."
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
