#!/usr/bin/env bash
# Writes the bridge's settings file from docker-mailserver's OAuth2 environment variables.
#
#   ENABLE_OAUTH2=1                  required, or nothing is written
#   OAUTH2_INTROSPECTION_URL         the identity provider's userinfo URL (docker-mailserver's meaning),
#                                    or its RFC 7662 introspection URL with OAUTH2_INTROSPECTION_MODE=post
#   OAUTH2_INTROSPECTION_MODE        optional: auth (default), get or post
#   OAUTH2_CLIENT_ID                 client_id, needed for introspection (mode post)
#   OAUTH2_CLIENT_SECRET             client_secret, needed for introspection (mode post)
#   OAUTH2_USERNAME_ATTRIBUTE        optional, default email
#   OAUTH2_TLS_CA_CERT_FILE          optional CA file for an https URL
#   OAUTH2_BRIDGE_ACCOUNT_FILE       optional, default /tmp/docker-mailserver/postfix-accounts.cf
#
# With ACCOUNT_PROVISIONER=LDAP the mailboxes are looked up in LDAP instead, with
# docker-mailserver's LDAP variables: LDAP_SERVER_HOST, LDAP_SEARCH_BASE, LDAP_BIND_DN,
# LDAP_BIND_PW, LDAP_START_TLS or DOVECOT_TLS, and DOVECOT_USER_FILTER (Dovecot's %u, %n, %d)
# or else LDAP_QUERY_FILTER_USER (Postfix's %s for the address, %u for the local part, %d).
#
# With OAUTH2_BRIDGE_SNIPPET=PATH it also writes the Dovecot configuration snippet that fits the
# installed Dovecot (`dovecot --version`, or DOVECOT_VERSION): on 2.3 the Lua passdb, on 2.4 the
# oauth2 block filled from the same variables plus the fail-closed Lua passdb. The script path in
# the snippet is OAUTH2_BRIDGE_SCRIPT (default /usr/local/share/dovecot-oauth2-bridge/oauth2-bridge.lua).
#
# Usage: oauth2-bridge-setup.sh [OUTPUT]   (default /etc/dovecot/oauth2-bridge.conf)
set -euo pipefail

output=${1:-/etc/dovecot/oauth2-bridge.conf}

if [ "${ENABLE_OAUTH2:-0}" != "1" ]; then
  echo "oauth2-bridge-setup: ENABLE_OAUTH2 is not 1, so no settings file is written."
  exit 0
fi

case "${OAUTH2_INTROSPECTION_MODE:-auth}" in
  auth|get) ;;
  post)
    if [ -z "${OAUTH2_CLIENT_ID:-}" ] || [ -z "${OAUTH2_CLIENT_SECRET:-}" ]; then
      echo "oauth2-bridge-setup: OAUTH2_INTROSPECTION_MODE=post needs OAUTH2_CLIENT_ID and OAUTH2_CLIENT_SECRET." >&2
      exit 1
    fi
    ;;
  *)
    echo "oauth2-bridge-setup: OAUTH2_INTROSPECTION_MODE must be auth, get or post." >&2
    exit 1
    ;;
esac

if [ -z "${OAUTH2_INTROSPECTION_URL:-}" ]; then
  echo "oauth2-bridge-setup: OAUTH2_INTROSPECTION_URL is empty. Set it to the identity provider's userinfo URL." >&2
  exit 1
fi

# Values are written in double quotes, which the bridge strips; a line break would end the value.
setting() {
  local key=$1 value=$2
  if [[ "$value" == *$'\n'* || "$value" == *$'\r'* ]]; then
    echo "oauth2-bridge-setup: the value for $key contains a line break, which the settings file cannot hold." >&2
    exit 1
  fi
  printf '%s = "%s"\n' "$key" "$value"
}

# Prints the LDAP account source settings from docker-mailserver's LDAP variables.
ldap_settings() {
  local uri=${LDAP_SERVER_HOST:-}
  if [ -z "$uri" ] || [ -z "${LDAP_SEARCH_BASE:-}" ]; then
    echo "oauth2-bridge-setup: ACCOUNT_PROVISIONER=LDAP needs LDAP_SERVER_HOST and LDAP_SEARCH_BASE." >&2
    exit 1
  fi
  # docker-mailserver accepts a bare host name as well as an ldap:// or ldaps:// URI.
  if [[ "$uri" != *"://"* ]]; then
    uri="ldap://$uri"
  fi

  local filter
  if [ -n "${DOVECOT_USER_FILTER:-}" ]; then
    filter=$DOVECOT_USER_FILTER
  elif [ -n "${LDAP_QUERY_FILTER_USER:-}" ]; then
    # Postfix's %u is the local part and %s the whole address: Dovecot's %n and %u.
    filter=${LDAP_QUERY_FILTER_USER//%u/%n}
    filter=${filter//%s/%u}
  else
    filter='(&(mail=%u)(mailEnabled=TRUE))'
  fi

  local starttls=no
  if [ "${LDAP_START_TLS:-no}" = "yes" ] || [ "${DOVECOT_TLS:-no}" = "yes" ]; then
    starttls=yes
  fi

  setting account_source ldap
  setting ldap_uris "$uri"
  setting ldap_base "$LDAP_SEARCH_BASE"
  if [ -n "${LDAP_BIND_DN:-}" ]; then
    setting ldap_bind_dn "$LDAP_BIND_DN"
    setting ldap_bind_password "${LDAP_BIND_PW:-}"
  fi
  setting ldap_user_filter "$filter"
  setting ldap_starttls "$starttls"
}

umask 077
temporary=$(mktemp "$(dirname "$output")/.oauth2-bridge.conf.XXXXXX")
trap 'rm -f "$temporary"' EXIT

{
  echo "# Written by oauth2-bridge-setup.sh from docker-mailserver's environment. Edits are overwritten."
  setting introspection_url "$OAUTH2_INTROSPECTION_URL"
  setting introspection_mode "${OAUTH2_INTROSPECTION_MODE:-auth}"
  setting username_attribute "${OAUTH2_USERNAME_ATTRIBUTE:-email}"
  if [ "${ACCOUNT_PROVISIONER:-FILE}" = "LDAP" ]; then
    ldap_settings
  else
    setting account_source postfix-accounts
    setting account_file "${OAUTH2_BRIDGE_ACCOUNT_FILE:-/tmp/docker-mailserver/postfix-accounts.cf}"
  fi
  if [ -n "${OAUTH2_TLS_CA_CERT_FILE:-}" ]; then
    setting tls_ca_cert_file "$OAUTH2_TLS_CA_CERT_FILE"
  fi
  if [ -n "${OAUTH2_CLIENT_ID:-}" ]; then
    setting client_id "$OAUTH2_CLIENT_ID"
  fi
  if [ -n "${OAUTH2_CLIENT_SECRET:-}" ]; then
    setting client_secret "$OAUTH2_CLIENT_SECRET"
  fi
} > "$temporary"

# The file contains the client secret, so only root and Dovecot's auth processes may read it.
if getent group dovecot > /dev/null; then
  chgrp dovecot "$temporary"
fi
chmod 0640 "$temporary"
mv -f "$temporary" "$output"
trap - EXIT
echo "oauth2-bridge-setup: wrote $output"

# Prints the Dovecot snippet for the given major.minor version.
dovecot_snippet() {
  local version=$1
  local script=${OAUTH2_BRIDGE_SCRIPT:-/usr/local/share/dovecot-oauth2-bridge/oauth2-bridge.lua}
  echo "# Written by oauth2-bridge-setup.sh for Dovecot $version. Edits are overwritten."
  case "$version" in
    2.3)
      cat <<SNIPPET
auth_mechanisms = \$auth_mechanisms xoauth2 oauthbearer
passdb {
  driver = lua
  mechanisms = xoauth2 oauthbearer
  args = file=$script blocking=yes
}
SNIPPET
      ;;
    *)
      # Dovecot 2.4 validates the token itself first, with the same URL and claim. The Lua
      # passdb then reads the settings file written above, because lua_settings is empty.
      cat <<SNIPPET
auth_mechanisms {
  xoauth2 = yes
  oauthbearer = yes
}
oauth2 {
  introspection_mode = ${OAUTH2_INTROSPECTION_MODE:-auth}
  introspection_url = $OAUTH2_INTROSPECTION_URL
  username_attribute = ${OAUTH2_USERNAME_ATTRIBUTE:-email}
SNIPPET
      if [ "${OAUTH2_INTROSPECTION_MODE:-auth}" = "post" ]; then
        echo "  client_id = $OAUTH2_CLIENT_ID"
        echo "  client_secret = $OAUTH2_CLIENT_SECRET"
      fi
      cat <<SNIPPET
}
passdb lua {
  lua_file = $script
  mechanisms_filter = xoauth2 oauthbearer
  result_failure = return-fail
  result_internalfail = return-fail
}
SNIPPET
      ;;
  esac
}

if [ -n "${OAUTH2_BRIDGE_SNIPPET:-}" ]; then
  version=${DOVECOT_VERSION:-$(dovecot --version 2>/dev/null || true)}
  version=$(printf '%s' "$version" | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')
  if [ -z "$version" ]; then
    echo "oauth2-bridge-setup: cannot tell the Dovecot version. Set DOVECOT_VERSION, e.g. 2.3 or 2.4." >&2
    exit 1
  fi
  snippet_temporary=$(mktemp "$(dirname "$OAUTH2_BRIDGE_SNIPPET")/.oauth2-bridge-snippet.XXXXXX")
  dovecot_snippet "$version" > "$snippet_temporary"
  if getent group dovecot > /dev/null; then
    chgrp dovecot "$snippet_temporary"
  fi
  chmod 0640 "$snippet_temporary"
  mv -f "$snippet_temporary" "$OAUTH2_BRIDGE_SNIPPET"
  echo "oauth2-bridge-setup: wrote $OAUTH2_BRIDGE_SNIPPET for Dovecot $version"
fi
