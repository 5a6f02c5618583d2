#!/usr/bin/env bash
# Makes sure `python3 -m venv` works. Debian and Ubuntu ship venv separately (python3-venv);
# install it with apt when we are root, otherwise say what to install.
set -euo pipefail
python=${1:-python3}
if "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "strata: apt-get install python3-venv" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >&2
  exit 0
fi
echo "strata: $python cannot create virtual environments; install python3-venv (or your system's equivalent)." >&2
exit 1
