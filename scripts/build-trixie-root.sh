#!/bin/sh
# Builds a Debian 13 "trixie" root file system with Dovecot 2.4 and the Lua 5.4
# libraries that the bridge loads, for the Dovecot 2.4 integration tests, which
# run that Dovecot under chroot(8).
#
# Usage: scripts/build-trixie-root.sh [DIR]
#   DIR defaults to /var/cache/dovecot-oauth2-bridge/trixie-root.
#
# The root is built once with debootstrap and reused. DIR/.oauth2-bridge-root
# records the suite, the variant and the package list; when they change, the next
# run builds a new root and replaces the old one. A cached root is checked in well
# under a second and the script prints nothing. A build takes about half a minute
# on a 2-core machine (measured: 33 to 43 s) and prints one line.
#
# Packages come from the Debian mirror that this host's apt uses (the first URI
# of /etc/apt/sources.list or /etc/apt/sources.list.d/ that serves the Debian
# archive), or from DEBIAN_MIRROR when it is set. debootstrap is installed with
# apt-get when it is missing. Must run as root. Exits 0 when DIR is ready.

set -eu

SUITE=trixie
VARIANT=minbase
# dovecot-auth-lua is the Lua passdb. The lua-* packages are the modules that
# the bridge requires (cjson, socket, ssl, lfs, lualdap).
PACKAGES="dovecot-core dovecot-imapd dovecot-auth-lua lua5.4 lua-cjson lua-socket lua-sec lua-filesystem lua-ldap"
DEFAULT_DIR=/var/cache/dovecot-oauth2-bridge/trixie-root
FALLBACK_MIRROR=http://deb.debian.org/debian

DIR=${1:-$DEFAULT_DIR}
STAMP_NAME=.oauth2-bridge-root

die() {
	echo "build-trixie-root: $*" >&2
	exit 1
}

case $DIR in
/*) ;;
*) die "DIR must be an absolute path, got '$DIR'" ;;
esac
DIR=${DIR%/}
[ -n "$DIR" ] && [ "$DIR" != / ] || die "DIR must not be /"

expected_stamp() {
	printf 'suite=%s\nvariant=%s\npackages=%s\n' "$SUITE" "$VARIANT" \
		"$(printf '%s\n' $PACKAGES | sort | tr '\n' ' ' | sed 's/ $//')"
}

root_is_current() {
	[ -x "$DIR/usr/sbin/dovecot" ] &&
		[ -f "$DIR/$STAMP_NAME" ] &&
		[ "$(cat "$DIR/$STAMP_NAME")" = "$(expected_stamp)" ]
}

# Fast path: no lock, no root check, no output.
if root_is_current; then
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot need it)"

# Prints the first Debian archive URI from apt's sources (one-line .list entries
# and deb822 .sources stanzas), skipping the security archive.
find_mirror() {
	for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$file" ] || continue
		sed -n \
			-e 's/^[[:space:]]*deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([a-z]\{1,\}:\/\/[^[:space:]]*\).*/\2/p' \
			-e 's/^[[:space:]]*URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' \
			"$file"
	done | sed 's:/*$::' | grep -E '/debian$' | head -n 1
}

MIRROR=${DEBIAN_MIRROR:-$(find_mirror || true)}
MIRROR=${MIRROR:-$FALLBACK_MIRROR}

if ! command -v debootstrap >/dev/null 2>&1; then
	# Another apt-get may be running; wait for its lock rather than fail.
	apt_install() {
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq debootstrap >/dev/null
	}
	if ! apt_install 2>/dev/null; then
		apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || die "apt-get update failed; cannot install debootstrap"
		apt_install || die "apt-get install debootstrap failed"
	fi
fi

parent=$(dirname "$DIR")
mkdir -p "$parent"

# One build at a time per DIR: a second caller waits here and then finds the
# root built.
lock="$DIR.lock"
exec 9>"$lock"
flock 9
if root_is_current; then
	exit 0
fi

# debootstrap may leave /proc or /sys mounted in a failed target. Removing a
# tree with live mounts in it would reach into the host's /proc and /sys.
unmount_below() {
	awk -v prefix="$1/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r mount_point; do
			umount "$mount_point" || umount -l "$mount_point" || true
		done
	if awk -v prefix="$1/" 'index($5, prefix) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		die "file systems are still mounted below $1; unmount them and run again"
	fi
}

new="$DIR.new"
log="$DIR.build.log"
unmount_below "$new"
rm -rf --one-file-system "$new"

started=$(date +%s)
if ! debootstrap --variant="$VARIANT" --include="$(echo $PACKAGES | tr ' ' ',')" \
	"$SUITE" "$new" "$MIRROR" >"$log" 2>&1; then
	unmount_below "$new"
	rm -rf --one-file-system "$new"
	echo "build-trixie-root: debootstrap $SUITE from $MIRROR into $new failed; last lines of $log:" >&2
	tail -n 20 "$log" >&2
	exit 1
fi
unmount_below "$new"

# The downloaded .deb files are not needed once they are installed.
rm -f "$new"/var/cache/apt/archives/*.deb

[ -x "$new/usr/sbin/dovecot" ] || die "debootstrap finished but $new/usr/sbin/dovecot is missing; see $log"
expected_stamp >"$new/$STAMP_NAME"

if [ -e "$DIR" ]; then
	unmount_below "$DIR"
	rm -rf --one-file-system "$DIR"
fi
mv "$new" "$DIR"

version=$(chroot "$DIR" /usr/sbin/dovecot --version 2>/dev/null || echo unknown)
echo "build-trixie-root: built Debian $SUITE root with Dovecot $version at $DIR in $(($(date +%s) - started)) s (mirror $MIRROR)" >&2
