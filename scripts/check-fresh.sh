#!/bin/sh
# check-fresh.sh - the README's two commands on a pristine Debian 12, as a new
# user would run them: a `debootstrap --variant=minbase bookworm` root with only
# gcc, make and git added, a clean clone of this repository's HEAD copied in,
# and `.ci/run` run inside it with CI=true.  (make check-fresh; root only.)
#
# Why: a package that is on the developer's machine but missing from
# scripts/deps.sh makes tests skip or fail only on someone else's machine.
# Run this whenever the dependencies change.
#
#   sh scripts/check-fresh.sh
#   FRESH_DIR=build/fresh   where the cached base root and each run's root live
#   FRESH_REBUILD=1         debootstrap the base again instead of using the cache
#
# The mirror is the host's own: read from /etc/apt/sources.list(.d), never
# written in this repository.  The Debian sources and the apt settings that say
# how to reach them (Acquire::, e.g. a proxy) are copied from the host into the
# root, so apt inside reaches the mirror the way the host's apt does.
# The debootstrap'd base is cached as a tarball; every run unpacks it afresh.
# Everything is mounted in a private mount namespace (unshare -m), so no mount
# outlives the script, even if it is killed; a trap unmounts on the way out too.
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)

die() { printf 'check-fresh: %s\n' "$*" >&2; exit 1; }
say() { printf 'check-fresh: %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || die "needs debootstrap: apt-get install -y debootstrap"
for tool in unshare flock chroot; do
	command -v "$tool" >/dev/null || die "needs $tool (util-linux, coreutils)"
done

# Start again in a private mount namespace: the mounts below die with it.
if [ -z "${CHECK_FRESH_NS:-}" ]; then
	CHECK_FRESH_NS=1 exec unshare --mount --propagation private sh "$0" "$@"
fi

DIR=${FRESH_DIR:-build/fresh}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
exec 9>"$DIR/lock"
flock -n 9 || die "another check-fresh is running in $DIR"
BASE=$DIR/base-bookworm.tar
ROOT=$DIR/root
LOG=$DIR/run.log
SUITE=bookworm
BASE_PKGS=gcc,make,git

# debian_sources - the host's apt sources for Debian's $SUITE (deb822 stanzas
# and one-line entries), other repositories and disabled stanzas left out.
debian_sources() {
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk -v suite="$SUITE" '
			function flush() {
				if (keep && !off) printf "%s\n", st
				st = ""; keep = 0; off = 0
			}
			/^[[:space:]]*$/ { flush(); next }
			{ st = st $0 "\n" }
			tolower($1) == "suites:" {
				for (i = 2; i <= NF; i++)
					if ($i ~ ("^" suite "(-updates|-security)?$")) keep = 1
			}
			tolower($1) == "enabled:" && tolower($2) == "no" { off = 1 }
			END { flush() }' "$f"
	done
}

debian_lists() {
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		grep -E "^[[:space:]]*deb[[:space:]].*[[:space:]]$SUITE(-updates|-security)?[[:space:]]" "$f" || true
	done
}

# host_mirror - the URI of the host's main Debian archive for $SUITE.
host_mirror() {
	{
		debian_sources | awk -v suite="$SUITE" '
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
			/^[[:space:]]*$/ { if (ok && uri != "") print uri; ok = 0; uri = "" }
			END { if (ok && uri != "") print uri }'
		debian_lists | awk -v suite="$SUITE" '
			{ for (i = 2; i <= NF; i++) if ($i == suite) { print (($2 ~ /^\[/) ? $3 : $2); break } }'
	} | grep -E '^https?://' | head -n 1
}

# copy_apt_config DEST - Debian sources, their keyrings, and the host's apt
# settings on how to reach a mirror (proxies, Release date checks) - only
# those, so the root stays pristine otherwise.
copy_apt_config() {
	dest=$1
	rm -f "$dest/etc/apt/sources.list" "$dest"/etc/apt/sources.list.d/*
	debian_sources >"$dest/etc/apt/sources.list.d/debian.sources"
	debian_lists >"$dest/etc/apt/sources.list"
	for key in $(debian_sources | awk 'tolower($1) == "signed-by:" { print $2 }'); do
		if [ -f "$key" ] && [ ! -e "$dest$key" ]; then
			mkdir -p "$dest$(dirname "$key")"
			cp "$key" "$dest$key"
		fi
	done
	for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
		[ -f "$f" ] || continue
		grep -Eqi 'Acquire::(.*::)?(proxy|Check-Valid-Until|Check-Date)' "$f" || continue
		cp "$f" "$dest/etc/apt/apt.conf.d/$(basename "$f")"
	done
	cp /etc/resolv.conf "$dest/etc/resolv.conf"
}

# build_base - debootstrap the base root once and keep it as a tarball.
build_base() {
	mirror=$(host_mirror)
	[ -n "$mirror" ] || die "no Debian $SUITE source in /etc/apt/sources.list(.d)"
	tmp=$DIR/base.tmp
	rm -rf --one-file-system "$tmp"
	say "debootstrap --variant=minbase --include=$BASE_PKGS $SUITE (host mirror)"
	debootstrap --variant=minbase --include="$BASE_PKGS" "$SUITE" "$tmp" "$mirror" \
		>"$DIR/debootstrap.log" 2>&1 || {
		tail -n 20 "$DIR/debootstrap.log" >&2
		die "debootstrap failed (log: $DIR/debootstrap.log)"
	}
	rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
	tar --numeric-owner -C "$tmp" -cpf "$BASE.tmp" .
	mv "$BASE.tmp" "$BASE"
	rm -rf --one-file-system "$tmp"
}

# mounts_under DIR - mount points at or below DIR, deepest first.
mounts_under() {
	awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r
}

unmount_all() {
	for m in $(mounts_under "$ROOT"); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
}

# fresh_root - a pristine copy of the base, nothing mounted in it.
fresh_root() {
	unmount_all
	[ -z "$(mounts_under "$ROOT")" ] || die "something is still mounted under $ROOT"
	rm -rf --one-file-system "$ROOT"
	mkdir -p "$ROOT"
	tar --numeric-owner -C "$ROOT" -xpf "$BASE"
	copy_apt_config "$ROOT"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
}

# mount_dev - a /dev of its own: a tmpfs with the usual nodes, devpts, shm.
mount_dev() {
	d=$ROOT/dev
	mount -t tmpfs -o mode=755,nosuid devtmp "$d"
	mknod -m 666 "$d/null" c 1 3
	mknod -m 666 "$d/zero" c 1 5
	mknod -m 666 "$d/full" c 1 7
	mknod -m 666 "$d/random" c 1 8
	mknod -m 666 "$d/urandom" c 1 9
	mknod -m 666 "$d/tty" c 5 0
	ln -s /proc/self/fd "$d/fd"
	ln -s /proc/self/fd/0 "$d/stdin"
	ln -s /proc/self/fd/1 "$d/stdout"
	ln -s /proc/self/fd/2 "$d/stderr"
	mkdir "$d/pts" "$d/shm"
	mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$d/pts"
	ln -s pts/ptmx "$d/ptmx"
	mount -t tmpfs -o mode=1777,nosuid,nodev shm "$d/shm"
}

# copy_in - the clean clone, and ../shared beside it, read-only.
copy_in() {
	head=$(git rev-parse HEAD)
	if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
		say "warning: uncommitted changes are not tested, only HEAD $head"
	fi
	mkdir -p "$ROOT/work"
	git clone -q --no-hardlinks "$repo" "$ROOT/work/relayguard"
	git -C "$ROOT/work/relayguard" checkout -q --detach "$head"
	if [ -d "$repo/../shared" ]; then
		cp -a "$repo/../shared" "$ROOT/work/shared"
		mount --bind "$ROOT/work/shared" "$ROOT/work/shared"
		mount -o remount,bind,ro "$ROOT/work/shared"
	fi
	say "testing $head in $ROOT/work/relayguard"
}

trap unmount_all EXIT
trap 'exit 130' INT TERM HUP

start=$(date +%s)
if [ ! -f "$BASE" ] || [ -n "${FRESH_REBUILD:-}" ]; then
	build_base
fi
fresh_root
# The root is a mount point, as / is on a real machine: otherwise
# `unshare --propagation private` (the peer lab's DNS isolation) fails in
# the chroot with "cannot change root filesystem propagation".
mount --bind "$ROOT" "$ROOT"
copy_in
mount -t proc proc "$ROOT/proc"
mount -t sysfs -o ro sysfs "$ROOT/sys"
mount_dev

# The environment of a fresh login as root, plus CI=true; a host proxy, if any.
set -- PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root TERM=dumb CI=true
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
	eval "val=\${$v:-}"
	[ -n "$val" ] && set -- "$@" "$v=$val"
done
say "running .ci/run in the pristine root (log: $LOG)"
rc=0
chroot "$ROOT" /usr/bin/env -i "$@" /bin/sh -c 'cd /work/relayguard && exec .ci/run' \
	>"$LOG" 2>&1 || rc=$?
end=$(date +%s)
tail -n 40 "$LOG"
say ".ci/run exit status $rc, wall time $(((end - start) / 60)) min $(((end - start) % 60)) s"
exit "$rc"
