#!/usr/bin/env bash
# The browser tests drive Debian's chromium. Install it when missing and we may (root);
# otherwise say so plainly: the suite does not skip them.
set -euo pipefail
CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Debian chromium for the browser tests…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "chromium is not installed at $CHROMIUM; install Debian's 'chromium' package (or set CHROMIUM_PATH)." >&2
exit 1
