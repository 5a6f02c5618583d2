#!/usr/bin/env bash
# Makes sure a PostgreSQL server (15 or newer) and the pgTAP extension for the same major
# version are installed. Installs them from Debian's packages when apt is usable as root;
# otherwise says in one sentence what to install and fails.
set -euo pipefail

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "strata: please install these packages (or their equivalent for your system): $*" >&2
    exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    echo "strata: apt-get update" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    apt_updated=1
  fi
  echo "strata: apt-get install $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

server_major() {
  # Highest installed server major version that has initdb.
  local best=""
  for bin in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$bin" ] || continue
    local v; v=$(basename "$(dirname "$(dirname "$bin")")")
    if [ -z "$best" ] || [ "$v" -gt "$best" ]; then best=$v; fi
  done
  echo "$best"
}

major=$(server_major)
if [ -z "$major" ]; then
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    major=$("$(pg_config --bindir)/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/')
  else
    apt_install postgresql postgresql-contrib
    major=$(server_major)
  fi
fi
if [ -z "$major" ] || [ "$major" -lt 15 ]; then
  echo "strata: PostgreSQL 15 or newer is required (found: ${major:-none}); install postgresql-15." >&2
  exit 1
fi

sharedir=/usr/share/postgresql/$major
if [ ! -f "$sharedir/extension/pgtap.control" ]; then
  apt_install "postgresql-$major-pgtap"
fi
# plpgsql_check is optional: it deepens `make lint` when present.
if [ ! -f "$sharedir/extension/plpgsql_check.control" ] && [ "$(id -u)" = 0 ] \
   && command -v apt-get >/dev/null 2>&1; then
  apt_install "postgresql-$major-plpgsql-check" || echo "strata: plpgsql_check not installed; lint will skip it" >&2
fi
echo "strata: PostgreSQL $major with pgTAP is ready" >&2
