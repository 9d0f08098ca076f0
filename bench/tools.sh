# tools.sh - sourced by bench/run.sh and bench/outbound.sh: Postfix's
# smtp-source and smtp-sink, from the postfix .deb unpacked (never installed)
# under $TOOLS (build/bench-tools).  Needs say() and TOOLS set by the caller.

# get_postfix_tools - 0 when $TOOLS/usr/sbin/smtp-source and smtp-sink exist
# (unpacking the .deb scripts/peers.sh already downloaded, or else fetching
# one with apt-get download), 1 with a message otherwise.
get_postfix_tools() {
	[ -x "$TOOLS/usr/sbin/smtp-source" ] && [ -x "$TOOLS/usr/sbin/smtp-sink" ] && return 0
	command -v dpkg >/dev/null 2>&1 || { say "dpkg not available"; return 1; }
	mkdir -p "$TOOLS" || return 1
	deb=$(ls build/peers/debs/postfix/postfix_*.deb 2>/dev/null | head -n 1)
	if [ -n "$deb" ]; then
		cp "$deb" "$TOOLS/" || return 1
	else
		command -v apt-get >/dev/null 2>&1 || { say "apt-get not available"; return 1; }
		say "fetching postfix .deb (apt-get download) into $TOOLS for smtp-source/smtp-sink"
		# apt-get download writes into the current directory; not installed, not run.
		(cd "$TOOLS" && rm -f postfix_*.deb && apt-get download postfix) >"$TOOLS/download.log" 2>&1 || {
			say "apt-get download postfix failed:"
			tail -n 3 "$TOOLS/download.log" >&2
			return 1
		}
	fi
	deb=$(ls "$TOOLS"/postfix_*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] && dpkg -x "$deb" "$TOOLS" || { say "dpkg -x failed"; return 1; }
	[ -x "$TOOLS/usr/sbin/smtp-source" ] && [ -x "$TOOLS/usr/sbin/smtp-sink" ]
}

# postfix_tools_version - "3.7.11-0+deb12u1", from the .deb's name.
postfix_tools_version() {
	ls "$TOOLS"/postfix_*.deb 2>/dev/null | sed -n 's/.*postfix_\([^_]*\)_.*/\1/p' | head -n 1
}
