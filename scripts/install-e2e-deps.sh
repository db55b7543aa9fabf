#!/usr/bin/env bash
# Installs the Debian packages of the end-to-end tests (spec/integration/smtp.test.mjs and
# roundcube.test.mjs), as root and only those missing: Postfix, Dovecot's LMTP, POP3 and
# ManageSieve servers, Roundcube with SQLite and the PHP it runs on, and Chromium.
# scripts/install-deps.sh calls this script. No system service is started or configured for
# use: the tests run their own Postfix, Dovecot and PHP server in a temporary directory.
set -euo pipefail

packages=(
  postfix
  dovecot-lmtpd dovecot-pop3d dovecot-managesieved
  roundcube-core roundcube-sqlite3 php-cli php-sqlite3 php-mbstring php-intl php-xml
  chromium fonts-dejavu-core
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${missing[*]}. Run this as root, or install them with apt-get." >&2
  exit 1
fi

# "No configuration" keeps the Postfix package from writing /etc/postfix/main.cf and from
# starting the system instance. Roundcube's package gets no database of its own: the tests give
# Roundcube an SQLite file in their temporary directory.
debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select No configuration
roundcube-core roundcube/dbconfig-install boolean false
EOF

echo "Installing Debian packages for the end-to-end tests: ${missing[*]}"
apt-get update -q
# RUNLEVEL=1 makes invoke-rc.d refuse to start the packaged services, as in install-deps.sh.
DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends "${missing[@]}"
