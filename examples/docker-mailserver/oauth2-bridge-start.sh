#!/bin/bash
# Container command of the image built from this directory's Dockerfile: writes the bridge's
# settings file from the environment, then runs docker-mailserver's own command (supervisord,
# which starts docker-mailserver's setup and then Dovecot).
set -euo pipefail

/usr/local/share/dovecot-oauth2-bridge/oauth2-bridge-setup.sh /etc/dovecot/oauth2-bridge.conf
exec "$@"
