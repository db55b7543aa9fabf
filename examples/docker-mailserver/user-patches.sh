#!/bin/bash
# docker-mailserver user patch: replaces docker-mailserver's own oauth2 passdb with the
# dovecot-oauth2-bridge Lua passdb, for installs that use the stock image. docker-mailserver runs
# /tmp/docker-mailserver/user-patches.sh (in its config volume) at every container start, after
# its own setup, which has already enabled auth-oauth2.conf.ext when ENABLE_OAUTH2=1, and before
# it starts Dovecot.
#
# Once, before the first start, install the bridge into the config volume from a clone of the
# repository (docker-data/dms/config/ is mounted at /tmp/docker-mailserver/):
#   make install DESTDIR=$PWD/docker-data/dms/config/oauth2-bridge
#
# Then this script, at each start:
#   1. installs the Debian packages the bridge needs, when missing (dovecot-auth-lua, lua5.4,
#      lua-cjson, lua-socket, lua-sec, lua-filesystem, and lua-ldap with ACCOUNT_PROVISIONER=LDAP);
#   2. copies the bridge to /usr/local/share/dovecot-oauth2-bridge/;
#   3. writes /etc/dovecot/oauth2-bridge.conf with oauth2-bridge-setup.sh, from
#      docker-mailserver's variables (ENABLE_OAUTH2, OAUTH2_INTROSPECTION_URL, OAUTH2_CLIENT_ID,
#      OAUTH2_CLIENT_SECRET) and the bridge's (OAUTH2_INTROSPECTION_MODE,
#      OAUTH2_USERNAME_ATTRIBUTE, OAUTH2_TLS_CA_CERT_FILE, OAUTH2_BRIDGE_ACCOUNT_FILE, and the
#      LDAP_* variables with ACCOUNT_PROVISIONER=LDAP);
#   4. puts the bridge's passdb into /etc/dovecot/conf.d/auth-oauth2.conf.ext, in place of
#      docker-mailserver's `driver = oauth2` passdb;
#   5. runs the check command, whose report goes to the container log. A failed check does not
#      stop the container.
#
# Further variables:
#   OAUTH2_BRIDGE_SOURCE  where make install put the bridge (its DESTDIR), default
#                         /tmp/docker-mailserver/oauth2-bridge
#   OAUTH2_BRIDGE_ROOT    a directory that replaces / in every path above, for tests
set -euo pipefail

root=${OAUTH2_BRIDGE_ROOT:-}
source_dir=${OAUTH2_BRIDGE_SOURCE:-/tmp/docker-mailserver/oauth2-bridge}
share=/usr/local/share/dovecot-oauth2-bridge
settings=/etc/dovecot/oauth2-bridge.conf
passdb_snippet=/etc/dovecot/conf.d/auth-oauth2.conf.ext
auth_conf=/etc/dovecot/conf.d/10-auth.conf

log() {
  echo "oauth2-bridge user-patches: $*"
}

fail() {
  echo "oauth2-bridge user-patches: $*" >&2
  exit 1
}

if [ "${ENABLE_OAUTH2:-0}" != "1" ]; then
  log "ENABLE_OAUTH2 is not 1, so the bridge is not set up."
  exit 0
fi

# 1. Packages. docker-mailserver 15 already ships dovecot-auth-lua; the others come from Debian.
packages=(dovecot-auth-lua lua5.4 lua-cjson lua-socket lua-sec lua-filesystem)
if [ "${ACCOUNT_PROVISIONER:-FILE}" = "LDAP" ]; then
  packages+=(lua-ldap)
fi
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 2. The bridge's files, from the tree that make install wrote into the config volume.
installed=$root$source_dir$share
for file in oauth2-bridge.lua oauth2-check.lua oauth2-bridge-setup.sh 10-oauth2-bridge.conf; do
  if [ ! -f "$installed/$file" ]; then
    fail "$installed/$file is missing. Run 'make install DESTDIR=<config volume>/oauth2-bridge' in a clone of dovecot-oauth2-bridge"
  fi
done
install -d "$root$share"
install -m 0644 "$installed/oauth2-bridge.lua" "$installed/oauth2-check.lua" "$installed/10-oauth2-bridge.conf" "$root$share/"
install -m 0755 "$installed/oauth2-bridge-setup.sh" "$root$share/"

# 3. The settings file.
"$root$share/oauth2-bridge-setup.sh" "$root$settings"

# 4. The passdb. docker-mailserver's 10-auth.conf includes auth-oauth2.conf.ext when
# ENABLE_OAUTH2=1; the include is enabled here too, in case this runs before that setup.
install -m 0644 "$root$share/10-oauth2-bridge.conf" "$root$passdb_snippet"
if [ -f "$root$auth_conf" ]; then
  sed -i -e '/!include auth-oauth2\.conf\.ext/s/^#//' "$root$auth_conf"
fi
if ! grep -q '^!include auth-oauth2\.conf\.ext' "$root$auth_conf" 2>/dev/null; then
  fail "$root$auth_conf does not include auth-oauth2.conf.ext, so Dovecot would not use the bridge"
fi
log "the bridge's passdb is in $root$passdb_snippet"

# 5. The check command, for the container log.
if command -v lua5.4 > /dev/null; then
  if ! lua5.4 "$root$share/oauth2-check.lua" --config "$root$settings" check; then
    log "the check above failed. Dovecot starts anyway; token logins fail until it passes."
  fi
fi
