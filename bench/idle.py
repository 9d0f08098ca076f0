#!/usr/bin/env python3
"""idle.py - memory cost of idle SMTP connections (Python 3 standard library only).

usage: idle.py --port PORT --pid SERVER_PID [--host 127.0.0.1] [--count 1000]
               [--sources 10] [--settle 1.0]

Reads the server's VmRSS, opens COUNT connections, reads each 220 greeting and
then leaves the connection idle, waits SETTLE seconds, reads VmRSS again, closes
everything. Source addresses are spread over 127.0.0.1 .. 127.0.0.SOURCES (all of
127/8 is loopback on Linux), so a per-client connection limit is less likely to
bite; the server still needs smtpd_client_connection_count_limit high enough.

Prints key=value lines for bench/run.sh:
  rss_before_kib, rss_after_kib, opened, greeted, refused (421 or other non-220),
  failed (connect/read errors), bytes_per_conn, first_error
"""
import argparse
import resource
import socket
import sys
import time


def vm(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_reply(sock):
    """One complete SMTP reply (possibly multi-line); returns its text."""
    buf = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return buf.decode("latin-1")
        buf += chunk
        lines = buf.split(b"\r\n")
        # complete when the last full line has a space after the code
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                return buf.decode("latin-1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--settle", type=float, default=1.0)
    a = ap.parse_args()

    limit = raise_nofile(a.count + 64)
    if limit < a.count + 16:
        print("first_error=RLIMIT_NOFILE is only %d" % limit)

    rss_before = vm(a.pid, "VmRSS")
    socks, greeted, refused, failed, first_error = [], 0, 0, 0, ""
    for i in range(a.count):
        src = "127.0.0.%d" % (1 + i % max(1, a.sources)) if a.host.startswith("127.") else None
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            if src:
                s.bind((src, 0))
            s.connect((a.host, a.port))
            reply = read_reply(s)
        except OSError as e:
            failed += 1
            first_error = first_error or "connection %d: %s" % (i, e)
            s.close()
            continue
        if reply.startswith("220"):
            greeted += 1
            socks.append(s)
        else:
            refused += 1
            first_error = first_error or "connection %d: %s" % (i, reply.strip()[:200])
            s.close()
    time.sleep(a.settle)
    rss_after = vm(a.pid, "VmRSS")
    # any connection the server dropped while we waited?
    dropped = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                dropped += 1
        except BlockingIOError:
            pass
        except OSError:
            dropped += 1
    for s in socks:
        s.close()

    per = (rss_after - rss_before) * 1024 / greeted if greeted else 0
    print("rss_before_kib=%d" % rss_before)
    print("rss_after_kib=%d" % rss_after)
    print("opened=%d" % a.count)
    print("greeted=%d" % greeted)
    print("refused=%d" % refused)
    print("failed=%d" % failed)
    print("dropped=%d" % dropped)
    print("bytes_per_conn=%d" % per)
    print("first_error=%s" % first_error.replace("\n", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
