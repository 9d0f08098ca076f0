#!/bin/sh
# deps.sh - install what relayguard needs on Debian 12, only what is missing.
#   sh scripts/deps.sh build   libraries and tools to compile
#   sh scripts/deps.sh test    what the test suite runs (clients, peers)
#   sh scripts/deps.sh fuzz    clang with libFuzzer, for make fuzz
# As root it runs apt-get; otherwise it prints the command to run.
set -eu

# libc6-dev: only a Recommends of gcc, and apt-get here skips recommends.
# libsystemd-dev: sd_notify for the Type=notify unit (etc/relayguard.service.in).
build_pkgs="gcc libc6-dev make pkg-config libevent-dev libssl-dev libc-ares-dev libpsl-dev libcrypt-dev libhiredis-dev libcurl4-openssl-dev zlib1g-dev libsystemd-dev"
# libnet-ssleay-perl, libio-socket-ssl-perl: swaks --tls/--tlsc need them and
# Debian only recommends them. unbound, ldnsutils: the DANE tests (a validating
# resolver on a loopback port; ldns-signzone signs the test zones). python3-jsonschema:
# the TLS-RPT test validates the report against RFC 8460. redis-server: shared_state.
test_pkgs="python3 swaks libnet-ssleay-perl libio-socket-ssl-perl procps dnsmasq-base openssl dovecot-core fail2ban redis-server unbound ldnsutils python3-jsonschema mandoc prometheus dovecot-lmtpd systemd python3-yaml python3-dkim opendkim-tools opendkim miltertest iproute2 chromium strace"
# dovecot-lmtpd: the LMTP delivery tests (mailbox_transport = lmtp:...).
# systemd: systemd-analyze verify/security of the unit (test_install; not started).
# strace: the calls the server makes, against the unit's SystemCallFilter= (test_install).
# python3-yaml: the SPF conformance suites (test_spf_suite.py) are YAML.
fuzz_pkgs="clang"

case "${1:-build}" in
build) want=$build_pkgs ;;
test) want=$test_pkgs ;;
fuzz) want=$fuzz_pkgs ;;
*) echo "usage: deps.sh build|test|fuzz" >&2; exit 64 ;;
esac

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "relayguard needs these packages:$missing" >&2
		echo "install them with: sudo apt-get install -y$missing" >&2
		exit 1
	fi
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Peers such as dovecot-core would start a system-wide daemon from their
	# postinst; the tests start their own on loopback. A policy-rc.d that
	# answers 101 ("action forbidden") keeps invoke-rc.d from starting any.
	policy=/usr/sbin/policy-rc.d
	own_policy=""
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\n# relayguard deps.sh: no services started during install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=1
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null
	if [ -n "$own_policy" ]; then
		rm -f "$policy"
		trap - EXIT
	fi
fi

# As root, the server drops its privileges to mail_owner (default: relayguard).
if [ "$(id -u)" -eq 0 ] && ! getent passwd relayguard >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin relayguard
	echo "created system user relayguard (mail_owner)"
fi

# The real MTAs of the peer lab (tests/peers/lab.py): unpacked, never installed.
if [ "${1:-build}" = test ]; then
	sh "$(dirname "$0")/peers.sh"
fi
