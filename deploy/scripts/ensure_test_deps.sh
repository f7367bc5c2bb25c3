#!/usr/bin/env bash
# The tests use real tools from Debian's packages: chromium (browser tests), docker-compose
# (validates deploy/compose.yaml without an engine), nginx (`nginx -t` and the proxy test)
# prometheus (promtool checks and unit-tests the alert rules) and gettext (msgfmt and
# msgattrib check the zh-Hans catalogue). Missing ones are installed
# when we may (root with apt); otherwise the run stops here and says which: the suite never
# skips them.
set -euo pipefail
CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v promtool >/dev/null || missing+=(prometheus)
command -v msgfmt >/dev/null || missing+=(gettext)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "Installing Debian packages for the tests: ${missing[*]}…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # The packages' services are not wanted here: the tests start their own nginx.
  systemctl disable --now nginx prometheus >/dev/null 2>&1 || true
  exit 0
fi
echo "Missing for the tests: ${missing[*]} (Debian packages; CHROMIUM_PATH may point at chromium)." >&2
exit 1
