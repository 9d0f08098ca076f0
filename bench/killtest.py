#!/usr/bin/env python3
"""killtest.py - durability under faults: no acknowledged message lost, none delivered twice.

    python3 bench/killtest.py [--kills 100] [--sessions 16] [--signal KILL|TERM]
                              [--binary build/relayguard] [--min-gap 0.1] [--max-gap 0.8]
                              [--run-delay 5] [--json]

A token-tracking client: SESSIONS threads send over loopback without pause, each
message carrying a unique token (X-Token:) to two of four local mailboxes. A
token counts as acknowledged only when the client has read the 250 after DATA.
Meanwhile the server is killed (SIGKILL: at a random moment; SIGTERM: a graceful
stop under load, which must exit 0) KILLS times and started again at once. At the
end the server drains its queue and stops, and every Maildir file (new/ and cur/)
is read:

    lost        acknowledged (token, recipient) pairs that have no copy at all
    duplicated  copies beyond the first of one (token, recipient)
    orphans     files left in the Maildirs' tmp/ directories

Messages that were sent but never acknowledged (the kill cut the reply) may or
may not be delivered: either is correct, they are counted apart. Prints one line
of figures and, with --json, a JSON object; exit status 0 when lost and
duplicated are 0 and the server ended cleanly, 1 otherwise.

It uses tests/integration/harness.py for the server (its own temporary
directory, loopback ports, the configuration the tests use).
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests',
                                'integration'))
import harness  # noqa: E402

USERS = ['u0', 'u1', 'u2', 'u3']
TOKEN = re.compile(rb'^X-Token: ([0-9a-f]{32})$', re.M)


class Ledger:
    """What the clients know: acknowledged and unacknowledged tokens."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}      # token -> recipients
        self.unacked = 0
        self.refused = 0

    def ack(self, token, rcpts):
        with self.lock:
            self.acked[token] = rcpts

    def count(self, field):
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)


def read_reply(f):
    """(code, text) of one SMTP reply; raises on a closed connection."""
    lines = []
    while True:
        line = f.readline(2048)
        if not line:
            raise ConnectionError('closed')
        lines.append(line)
        if len(line) < 4 or line[3:4] != b'-':
            return int(line[:3]), b''.join(lines)


def one_session(port, ledger, stop):
    """One connection: messages until stop or an error."""
    with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
        f = s.makefile('rb')
        if read_reply(f)[0] != 220:
            return
        s.sendall(b'EHLO killtest.example.org\r\n')
        read_reply(f)
        while not stop.is_set():
            send_one(s, f, ledger)


def send_one(s, f, ledger):
    token = uuid.uuid4().hex
    rcpts = random.sample(USERS, 2)
    s.sendall(b'MAIL FROM:<k@example.org>\r\n')
    if read_reply(f)[0] != 250:
        raise ConnectionError('MAIL refused')
    for r in rcpts:
        s.sendall(b'RCPT TO:<%s@localhost>\r\n' % r.encode())
        if read_reply(f)[0] != 250:
            raise ConnectionError('RCPT refused')
    s.sendall(b'DATA\r\n')
    if read_reply(f)[0] != 354:
        raise ConnectionError('DATA refused')
    body = (b'Subject: killtest\r\nX-Token: %s\r\n\r\n' % token.encode()
            + b'x' * random.randint(100, 4000) + b'\r\n.\r\n')
    s.sendall(body)
    ledger.count('unacked')  # until the 250 is read
    code, _ = read_reply(f)
    with ledger.lock:
        ledger.unacked -= 1
    if code == 250:
        ledger.ack(token, rcpts)
    else:
        ledger.count('refused')


def client(port, ledger, stop):
    """Sessions back to back; a cut connection is normal here: reconnect."""
    while not stop.is_set():
        try:
            one_session(port, ledger, stop)
        except (OSError, ConnectionError, ValueError):
            time.sleep(0.02)


def scan_mail(mail_dir):
    """{(token, mailbox): copies}, and the number of files in tmp/ directories."""
    copies, orphans = {}, 0
    for root, _dirs, files in os.walk(mail_dir):
        sub = os.path.basename(root)
        if sub == 'tmp':
            orphans += len(files)
            continue
        if sub not in ('new', 'cur'):
            continue
        for name in files:
            with open(os.path.join(root, name), 'rb') as fh:
                head = fh.read(4096)
            t = TOKEN.search(head)
            if t:  # the mailbox from the path: mail/<domain>/<user>/new/NAME
                key = (t.group(1).decode(), os.path.basename(os.path.dirname(root)))
                copies[key] = copies.get(key, 0) + 1
    return copies, orphans


def drain(server, timeout):
    """Wait until active/ and deferred/ are empty."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not server.queue_files('active') and not server.queue_files('deferred'):
            return True
        time.sleep(0.1)
    return False


def interrupt(server, sig, clean_exits):
    """One fault: SIGKILL, or SIGTERM with its exit status checked; then start."""
    if sig == 'KILL':
        server.kill9()
    else:
        clean_exits.append(server.stop(timeout=30, check=False) == 0)
    server.start(timeout=30)


def run(kills=100, sessions=16, sig='KILL', min_gap=0.1, max_gap=0.8, seed=None, run_delay=5):
    """Returns the figures as a dict (see the module comment)."""
    rnd = random.Random(seed)
    ledger, stop, clean_exits = Ledger(), threading.Event(), []
    users = ', '.join(USERS)
    # queue_run_delay: see the README (a restart under load can leave files in
    # active/ that only the next periodic queue scan picks up)
    server = harness.Server(overrides={'local_recipient_maps': 'inline:{%s}' % users,
                                       'smtpd_client_connection_count_limit': '1000',
                                       'queue_run_delay': '%ds' % run_delay})
    started = time.time()
    try:
        threads = [threading.Thread(target=client, args=(server.port, ledger, stop), daemon=True)
                   for _ in range(sessions)]
        for t in threads:
            t.start()
        for _ in range(kills):
            time.sleep(rnd.uniform(min_gap, max_gap))
            interrupt(server, sig, clean_exits)
        time.sleep(max_gap)
        stop.set()
        left_at_start = len(server.queue_files('active'))
        for t in threads:
            t.join(15)
        drained = drain(server, 120)
        log = server.log()
        clean_exits.append(server.stop(timeout=30, check=False) == 0)
        copies, orphans = scan_mail(server.mail_dir)
    finally:
        server.cleanup()
    acked = sum(len(r) for r in ledger.acked.values())
    lost = sum(1 for tok, rcpts in ledger.acked.items() for r in rcpts
               if copies.get((tok, r), 0) == 0)
    dups = sum(n - 1 for n in copies.values() if n > 1)
    return {
        'signal': sig, 'faults': kills, 'sessions': sessions,
        'seconds': round(time.time() - started, 1),
        'messages_acknowledged': len(ledger.acked), 'deliveries_acknowledged': acked,
        'lost': lost, 'duplicated': dups,
        'duplicated_percent': round(100.0 * dups / acked, 4) if acked else 0.0,
        'orphans_in_tmp': orphans, 'queue_drained': drained,
        'unclean_exits': clean_exits.count(False),
        'left_in_active_at_last_start': left_at_start,
        'already_delivered_logged': log.count('already-delivered'),
        'maildir_orphans_removed': sum(int(n) for n in
                                       re.findall(r'orphans_removed=(\d+)', log)),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--kills', type=int, default=100)
    ap.add_argument('--sessions', type=int, default=16)
    ap.add_argument('--signal', choices=('KILL', 'TERM'), default='KILL')
    ap.add_argument('--min-gap', type=float, default=0.1)
    ap.add_argument('--max-gap', type=float, default=0.8)
    ap.add_argument('--run-delay', type=int, default=5, help='queue_run_delay, seconds')
    ap.add_argument('--binary', default=None)
    ap.add_argument('--json', action='store_true')
    a = ap.parse_args()
    if a.binary:
        os.environ['RELAYGUARD_BIN'] = os.path.abspath(a.binary)
    r = run(a.kills, a.sessions, a.signal, a.min_gap, a.max_gap, run_delay=a.run_delay)
    print(json.dumps(r) if a.json else
          'SIG%(signal)s x%(faults)d, %(sessions)d sessions, %(seconds)ss: '
          '%(messages_acknowledged)d messages (%(deliveries_acknowledged)d deliveries) '
          'acknowledged, lost %(lost)d, duplicated %(duplicated)d (%(duplicated_percent)s%%), '
          'tmp/ orphans at the end %(orphans_in_tmp)d, queue drained %(queue_drained)s, '
          'unclean exits %(unclean_exits)d, already-delivered %(already_delivered_logged)d, '
          'orphans removed at start %(maildir_orphans_removed)d' % r)
    ok = r['lost'] == 0 and r['duplicated'] == 0 and r['queue_drained'] and \
        r['unclean_exits'] == 0
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
