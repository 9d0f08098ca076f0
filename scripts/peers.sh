#!/bin/sh
# peers.sh - the real MTAs the peer lab (tests/peers/lab.py) starts: Postfix,
# Exim and OpenSMTPD from Debian 12 packages, unpacked, never installed.
#   sh scripts/peers.sh        (as root; scripts/deps.sh test calls it)
#
# Postfix, Exim and OpenSMTPD conflict with each other as installed packages
# (each is the system's "mail-transport-agent"), and installing one would start
# a system-wide service.  So each .deb is fetched with `apt-get download` and
# unpacked with `dpkg -x` into build/peers/<name>/; only the shared libraries
# they link against are installed (those missing), plus nmap for bench/probe.sh.
# The system users and groups the daemons insist on are created when absent.
# Nothing is started here.  Idempotent: a second run only checks stamps.
set -eu
cd "$(dirname "$0")/.."

DIR=build/peers

say() { printf 'peers: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
	if [ "${CI:-}" = true ]; then
		say "not root: the peer lab needs root (apt-get, system users), and under CI=true its tests would fail"
		exit 1
	fi
	say "not root: the peer lab needs root (apt-get, system users); its tests will skip"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

updated=no
apt_update() {
	[ "$updated" = yes ] && return 0
	apt-get update -q >/dev/null
	updated=yes
}

# fetch NAME DEB... - download and unpack the packages unless the stamp says done.
fetch() {
	name=$1
	shift
	dest=$DIR/$name
	[ -f "$dest/.unpacked" ] && return 0
	rm -rf "$dest" "$DIR/debs/$name"
	mkdir -p "$dest" "$DIR/debs/$name"
	say "downloading $* into $DIR/debs/$name"
	# apt-get download runs as _apt when it can; a root-only build dir makes it
	# fall back to root with a warning, which is harmless.
	(cd "$DIR/debs/$name" && apt-get download "$@" >download.log 2>&1) || {
		apt_update
		(cd "$DIR/debs/$name" && apt-get download "$@" >download.log 2>&1) || {
			tail -n 5 "$DIR/debs/$name/download.log" >&2
			exit 1
		}
	}
	for deb in "$DIR/debs/$name"/*.deb; do
		dpkg -x "$deb" "$dest"
	done
	touch "$dest/.unpacked"
}

# build/peers/<name>/ holds these .debs unpacked
fetch postfix postfix
fetch exim exim4-base exim4-daemon-light
fetch opensmtpd opensmtpd

# The libraries: every lib* package in the .debs' Depends, without versions.
libs=$(for deb in "$DIR"/debs/*/*.deb; do
	dpkg-deb -f "$deb" Depends
	dpkg-deb -f "$deb" Pre-Depends
done |
	tr '|' ',' | tr ',' '\n' | sed -E 's/\(.*\)//; s/^[[:space:]]+//; s/[[:space:]]+$//' |
	grep -E '^lib' | sort -u)
# libsasl2-modules: only a Recommends of libsasl2-2, but without its mechanisms
# Postfix's smtpd with smtpd_sasl_auth_enable = yes (Cyrus, the default type)
# stops at "no SASL authentication mechanisms": the audit fixtures' submission
# services were unreachable on a pristine machine.
missing=""
for p in $libs nmap libsasl2-modules; do
	installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	say "installing:$missing"
	apt_update
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

# System users and groups, as the packages' postinst scripts would make them.
group() { getent group "$1" >/dev/null || groupadd --system "$1"; }
user() { # user NAME GROUP
	getent passwd "$1" >/dev/null ||
		useradd --system --gid "$2" --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin "$1"
}
group postfix && user postfix postfix     # Postfix mail_owner
group postdrop                            # Postfix setgid_group
group Debian-exim && user Debian-exim Debian-exim   # Exim's compiled-in exim_user
group opensmtpd && user opensmtpd opensmtpd         # OpenSMTPD's privilege-separated user
group opensmtpq && user opensmtpq opensmtpq         # and its queue user
# OpenSMTPD chroots its unprivileged processes here (compiled-in path).
mkdir -p /var/lib/opensmtpd/empty
chmod 755 /var/lib/opensmtpd/empty
