#!/usr/bin/env bash
# Installs what the browser test drives (tests/integrations.rs: the search page in headless
# Chromium): Debian's chromium and chromium-driver. Does nothing when both are present.
set -euo pipefail
chromium="${WENDA_CHROMIUM:-/usr/bin/chromium}"
driver="${WENDA_CHROMEDRIVER:-chromedriver}"
if [ -x "$chromium" ] && command -v "$driver" >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "the browser test needs Chromium and ChromeDriver: install them and set WENDA_CHROMIUM" \
       "and WENDA_CHROMEDRIVER to their paths" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing chromium and chromium-driver for the browser test" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq chromium chromium-driver >/dev/null ||
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver >/dev/null; }
