#!/usr/bin/env python3
"""loadgen.py - FALLBACK load generator used only when Postfix's smtp-source
cannot be obtained (Python 3 standard library: smtplib + threads).

usage: loadgen.py -s SESSIONS -m MESSAGES -l LENGTH -f FROM -t TO [-M HELO] [-d] HOST:PORT

Same meaning as smtp-source's flags: SESSIONS parallel sessions share MESSAGES
messages, each with LENGTH bytes of payload (lines of 79 characters + CRLF, like
smtp-source) after From/To/Date/Message-Id headers. With -d a session sends all
of its messages over one connection; without it, one connection per message.
Exits 1 if any message was not accepted with 250 (prints the first error).
Being Python with a GIL, it is itself a bottleneck well below a fast server:
figures from it are lower bounds, not comparable with smtp-source ones.
"""
import argparse
import email.utils
import smtplib
import sys
import threading


def payload(length):
    out, n, i = [], 0, 1
    while n < length:
        line = (str(i) + "X" * 79)[:79]
        line = line[: max(0, length - n)]
        out.append(line)
        n += len(line) + 2
        i += 1
    return "\r\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-s", type=int, default=1, dest="sessions")
    ap.add_argument("-m", type=int, default=1, dest="messages")
    ap.add_argument("-l", type=int, default=0, dest="length")
    ap.add_argument("-f", default="foo@localhost", dest="sender")
    ap.add_argument("-t", default="foo@localhost", dest="rcpt")
    ap.add_argument("-M", default="localhost", dest="helo")
    ap.add_argument("-d", action="store_true", dest="reuse")
    ap.add_argument("target")
    a = ap.parse_args()
    host, _, port = a.target.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"

    body = payload(a.length)
    lock = threading.Lock()
    state = {"left": a.messages, "ok": 0, "err": ""}

    def take():
        with lock:
            if state["left"] <= 0 or state["err"]:
                return False
            state["left"] -= 1
            return True

    def msg(n):
        return ("From: <%s>\r\nTo: <%s>\r\nDate: %s\r\nMessage-Id: <%d.loadgen@%s>\r\n\r\n%s\r\n"
                % (a.sender, a.rcpt, email.utils.formatdate(), n, a.helo, body))

    def session():
        conn = None
        try:
            while take():
                if conn is None:
                    conn = smtplib.SMTP(host, int(port), local_hostname=a.helo, timeout=60)
                    conn.helo(a.helo)
                refused = conn.sendmail(a.sender, [a.rcpt], msg(id(conn)))
                if refused:
                    raise smtplib.SMTPException("recipient refused: %r" % refused)
                with lock:
                    state["ok"] += 1
                if not a.reuse:
                    conn.quit()
                    conn = None
            if conn is not None:
                conn.quit()
        except (OSError, smtplib.SMTPException) as e:
            with lock:
                state["err"] = state["err"] or str(e)

    threads = [threading.Thread(target=session) for _ in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("loadgen (python smtplib fallback): %d of %d messages accepted" % (state["ok"], a.messages))
    if state["err"]:
        print("loadgen: first error: %s" % state["err"], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
