#!/usr/bin/env bash
# The Debian packages the tests need beside the Python environment: Chromium and its driver (the
# arena's browser tests, through Selenium: Playwright can only drive its own downloaded browser),
# Noto CJK fonts (the Japanese page renders), PostgreSQL (the arena's cluster database, started by
# the tests as a throwaway server). Does nothing when all are installed; root runs apt-get itself,
# another user through sudo.
# Usage: requirements/install-system-packages.sh
set -euo pipefail
packages=(chromium chromium-driver fonts-noto-cjk postgresql)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && { echo "system packages: all installed"; exit 0; }
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
echo "system packages: installed ${missing[*]}"
