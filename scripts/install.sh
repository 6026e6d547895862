#!/usr/bin/env bash
# Installs what Hotline needs on a Debian machine (as root): system packages and the venv.
# Idempotent: re-running only installs what is missing. Usage: scripts/install.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# kamailio: the SIP edge of `hotline cluster` (its dispatcher module is in the main package).
apt_packages=(debootstrap espeak-ng sox ffmpeg redis-server python3-venv ca-certificates kamailio)
[ "$want_test" = 1 ] && apt_packages+=(chromium chromium-driver)

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The package's own service would take SIP port 5060 with Debian's sample config: the hotline
# starts Kamailio itself (`hotline cluster up`), with its own rendered config.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled kamailio >/dev/null 2>&1; then
  systemctl disable --now kamailio >/dev/null 2>&1 || true
fi

# Local Redis for live state: start one if nothing answers (no persistence needed).
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  echo "==> starting a local redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$python" -m venv .venv
fi
extras=""
[ "$want_test" = 1 ] && extras="[test]"
echo "==> installing Python packages"
.venv/bin/pip install -q --disable-pip-version-check -e ".${extras}" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import hotline, agi_scripts, call_router, dashboard" 
