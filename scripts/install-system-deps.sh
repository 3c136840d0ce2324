#!/usr/bin/env bash
# Installs the Debian packages Streamwatch runs and tests against, only when a binary is missing:
# Prometheus (with promtool), Alertmanager (with amtool), prometheus-node-exporter (a real exporter the
# many-series monitor test watches), Chromium for the browser test, and
# docker-compose (v1), which validates docker-compose.yml offline (no Docker engine needed).
# Idempotent: a second run with everything present does nothing and touches no network.
set -euo pipefail

declare -A want=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
  [prometheus-node-exporter]=prometheus-node-exporter
  [chromium]=chromium
  [docker-compose]=docker-compose
)
missing=()
for bin in "${!want[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("${want[$bin]}")
done
# Debian's python3 makes venvs only with python3-venv (ensurepip); make test creates .venv right after.
if ! "${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-system-deps: need root to install: ${pkgs[*]} (run: apt-get install ${pkgs[*]})" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install these yourself: ${pkgs[*]}" >&2
  exit 1
fi
echo "install-system-deps: installing ${pkgs[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
