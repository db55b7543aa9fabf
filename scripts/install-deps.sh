#!/usr/bin/env bash
# Installs what building, testing and the demo need: Debian packages (as root, only those
# missing) and the pinned npm devDependencies (only when node_modules is missing or stale).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  dovecot-core dovecot-imapd dovecot-auth-lua
  lua5.4 lua-cjson lua-socket lua-sec lua-filesystem lua-ldap lua-busted
  slapd ldap-utils
  python3 openssl curl ca-certificates
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages: ${missing[*]}. Run this as root, or install them with apt-get." >&2
    exit 1
  fi
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -q
  # The packaged Dovecot and slapd services must not start: the tests and the demo run their own.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Postfix, Roundcube, Chromium and the other end-to-end parts have their own list.
if [ -x scripts/install-e2e-deps.sh ]; then
  scripts/install-e2e-deps.sh
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "Installing npm devDependencies from package-lock.json"
  npm ci --no-audit --no-fund
fi
