#!/usr/bin/env python3
"""benchutil.py - small helpers for bench/run.sh (Python 3 standard library only).

  benchutil.py now                         wall clock, seconds since the epoch (float)
  benchutil.py freeport                    a free TCP port on 127.0.0.1
  benchutil.py status PID FIELD            a field of /proc/PID/status in KiB (VmRSS, VmHWM)
  benchutil.py cpu PID                     CPU seconds used by PID (all threads): "user system"
  benchutil.py waitfiles DIR N TIMEOUT     wait until DIR holds >= N entries; prints
                                           "<count> <epoch-seconds>" when done or timed out,
                                           the time being when the last entry landed (the
                                           newest st_ctime_ns among them), not when the
                                           wait saw it
  benchutil.py searchable DIR              exit 0 if DIR and every parent are searchable by
                                           everyone (o+x), as a privilege-dropped server needs
  benchutil.py waitlog FILE WORD TIMEOUT PID
                                           wait until WORD appears in FILE (exit 0), or
                                           PID dies / TIMEOUT passes (exit 1)
"""
import os
import socket
import sys
import time


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
    raise KeyError(field)


def alive(pid):
    """True while PID runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def count_entries(path):
    try:
        with os.scandir(path) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0


def landed(path):
    """(entries, newest st_ctime_ns among them): a file renamed or linked
    into a Maildir's new/ gets its ctime then, so the newest ctime is when the
    last one landed, whenever we look.  The kernel stamps it from its coarse
    clock (one tick, 1-4 ms, behind time.time_ns() at most)."""
    n = newest = 0
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    newest = max(newest, e.stat(follow_symlinks=False).st_ctime_ns)
                except FileNotFoundError:
                    continue
                n += 1
    except FileNotFoundError:
        pass
    return n, newest


def wait_landed(path, want, timeout, interval=0.01):
    """Wait until path holds >= want entries (or timeout seconds pass);
    returns landed(path).  The polling interval does not bias the time."""
    deadline = time.time() + timeout
    while count_entries(path) < want and time.time() < deadline:
        time.sleep(interval)
    return landed(path)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "now":
        print("%.6f" % time.time())
    elif cmd == "freeport":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
    elif cmd == "status":
        print(proc_status(int(argv[2]), argv[3]))
    elif cmd == "cpu":
        with open("/proc/%d/stat" % int(argv[2])) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        hz = os.sysconf("SC_CLK_TCK")
        print("%.2f %.2f" % (int(fields[11]) / hz, int(fields[12]) / hz))
    elif cmd == "waitfiles":
        n, newest = wait_landed(argv[2], int(argv[3]), float(argv[4]))
        print("%d %d.%09d" % (n, newest // 10**9, newest % 10**9))
    elif cmd == "searchable":
        p = os.path.abspath(argv[2])
        while True:
            if not os.stat(p).st_mode & 0o001:
                return 1
            if p == "/":
                return 0
            p = os.path.dirname(p)
    elif cmd == "waitlog":
        path, word, timeout, pid = argv[2], argv[3], float(argv[4]), int(argv[5])
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with open(path, errors="replace") as f:
                    if word in f.read():
                        return 0
            except FileNotFoundError:
                pass
            if not alive(pid):
                return 1
            time.sleep(0.02)
        return 1
    else:
        sys.stderr.write(__doc__)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
