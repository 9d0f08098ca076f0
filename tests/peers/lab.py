"""lab.py - real MTAs (Postfix, Exim, OpenSMTPD) on loopback, for proving
`relayguard probe` against the servers it will meet.

This module owns the peer lab: it writes each peer's configuration into a
temporary directory, starts the daemon from the Debian packages that
scripts/peers.sh unpacked into build/peers/, waits for its banner, and stops
it by PID.  It also owns the two sinks every peer delivers into.

    with lab.Peer('postfix', 'secure') as p:
        ... talk SMTP to (p.host, p.port) ...
        p.relay_sink.wait(1)        # what the peer relayed off its domain
        p.local_sink.wait(1)        # what it "delivered locally" (lab.test)

kinds: postfix, exim, opensmtpd.  modes:
  open         relays for anyone (a deliberately open relay)
  secure       the distribution's normal behaviour; the trusted network is
               only 127.0.0.1/32, so a client bound to 127.0.0.9 is an outsider
  sender-hole  relays for anyone whose MAIL FROM is @lab.test

Nothing leaves the machine.  A peer sends mail for its own domain lab.test to
the local sink and every other domain to the relay sink, both Python SMTP
servers on 127.0.0.1; the routes are IP literals, so no MX lookup exists.
Each daemon runs in its own mount namespace (unshare -m) in which
/etc/resolv.conf points at 127.0.0.1, so even a stray reverse lookup cannot
reach the machine's real resolver.  OpenSMTPD's spool and control socket are
compiled-in paths (/var/spool/smtpd, /run/smtpd.sock): in its namespace
/var/spool and /run are the instance's own directories, so instances never
share a queue.

How each starts (DIR is the instance's temporary directory, P build/peers):
  postfix    P/postfix/usr/lib/postfix/sbin/master -c DIR/conf -d
             (LD_LIBRARY_PATH=P/postfix/usr/lib/postfix, passed on to its
             daemons by import_environment; log in DIR/log/maillog via postlogd)
  exim       P/exim/usr/sbin/exim4 -C DIR/exim.conf -bdf -q30s
             (root keeps privilege with -C, its re-executed deliveries do not
             and run as Debian-exim, which is all an smtp transport needs; it
             says so in DIR/log/paniclog, which is expected)
  opensmtpd  P/opensmtpd/usr/sbin/smtpd -d -f DIR/smtpd.conf
each behind: unshare -m --propagation private sh -c 'mount --bind ... && exec "$@"'

Run as root (the daemons start as root and drop to their users).
lab.available(kind) says whether a kind can run here, and why not.
Environment: RG_KEEP=1 keeps each peer's directory.
"""
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS_DIR = os.path.join(REPO, 'build', 'peers')
KINDS = ('postfix', 'exim', 'opensmtpd')
MODES = ('open', 'secure', 'sender-hole')
DOMAIN = 'lab.test'
HOSTNAME = 'mx.lab.test'
SINK_HOSTNAME = 'sink.lab.test'

BINARIES = {
    'postfix': 'postfix/usr/lib/postfix/sbin/master',
    'exim': 'exim/usr/sbin/exim4',
    'opensmtpd': 'opensmtpd/usr/sbin/smtpd',
}
# the Debian packages each kind is unpacked from (scripts/peers.sh), for a
# test that cannot run to name
PACKAGES = {
    'postfix': 'postfix (unpacked by scripts/peers.sh, run as root)',
    'exim': 'exim4-daemon-light (unpacked by scripts/peers.sh, run as root)',
    'opensmtpd': 'opensmtpd (unpacked by scripts/peers.sh, run as root)',
}
# users/groups each daemon insists on (scripts/peers.sh creates them)
USERS = {
    'postfix': (('postfix',), ('postdrop',)),
    'exim': (('Debian-exim',), ('Debian-exim',)),
    'opensmtpd': (('opensmtpd', 'opensmtpq'), ()),
}


class PeerError(Exception):
    pass


def free_port(host='127.0.0.1'):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# -- sinks ---------------------------------------------------------------------

class _SinkHandler(socketserver.StreamRequestHandler):
    """One SMTP session into the sink: enough for an MTA's SMTP client."""
    timeout = 30

    def reply(self, text):
        self.wfile.write(text.encode() + b'\r\n')
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        self.reply('220 %s ESMTP sink' % SINK_HOSTNAME)
        mail_from, rcpts = None, []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            cmd = line.decode('utf-8', 'replace').rstrip('\r\n')
            verb = cmd[:4].upper()
            if verb in ('EHLO', 'HELO'):
                if verb == 'EHLO':
                    self.reply('250-%s\r\n250-8BITMIME\r\n250 SIZE 104857600' % SINK_HOSTNAME)
                else:
                    self.reply('250 %s' % SINK_HOSTNAME)
            elif cmd.upper().startswith('MAIL FROM:'):
                mail_from, rcpts = _path(cmd[10:]), []
                self.reply('250 2.1.0 ok')
            elif cmd.upper().startswith('RCPT TO:'):
                if mail_from is None:
                    self.reply('503 5.5.1 MAIL first')
                    continue
                rcpts.append(_path(cmd[8:]))
                self.reply('250 2.1.5 ok')
            elif verb == 'DATA':
                if not rcpts:
                    self.reply('503 5.5.1 RCPT first')
                    continue
                self.reply('354 go ahead')
                data = self._data()
                if data is None:
                    return
                sink.store(mail_from, rcpts, data)
                mail_from, rcpts = None, []
                self.reply('250 2.0.0 stored')
            elif verb == 'RSET':
                mail_from, rcpts = None, []
                self.reply('250 2.0.0 ok')
            elif verb == 'NOOP':
                self.reply('250 2.0.0 ok')
            elif verb == 'QUIT':
                self.reply('221 2.0.0 bye')
                return
            else:
                self.reply('502 5.5.2 not implemented')

    def _data(self):
        out = []
        while True:
            line = self.rfile.readline(1 << 20)
            if not line:
                return None
            if line in (b'.\r\n', b'.\n'):
                return b''.join(out)
            if line.startswith(b'.'):
                line = line[1:]
            out.append(line)


def _path(arg):
    """The address inside <...> of a MAIL FROM/RCPT TO argument."""
    arg = arg.strip()
    m = re.match(r'<([^>]*)>', arg)
    return m.group(1) if m else arg.split(' ')[0]


class _ThreadingServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Sink:
    """An SMTP server on 127.0.0.1 that writes each message to its own file:
    'MAIL FROM:<s>' and 'RCPT TO:<r>' lines, a blank line, then the data."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self._n = 0
        self._lock = threading.Lock()
        self.server = _ThreadingServer(('127.0.0.1', 0), _SinkHandler)
        self.server.sink = self
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={'poll_interval': 0.1}, daemon=True)
        self._thread.start()

    def store(self, mail_from, rcpts, data):
        with self._lock:
            self._n += 1
            name = '%04d.eml' % self._n
        head = 'MAIL FROM:<%s>\n' % mail_from
        head += ''.join('RCPT TO:<%s>\n' % r for r in rcpts)
        tmp = os.path.join(self.dir, '.' + name)
        with open(tmp, 'wb') as f:
            f.write(head.encode() + b'\n' + data)
        os.rename(tmp, os.path.join(self.dir, name))

    def files(self):
        try:
            # not '.NNNN.eml': store() is still writing it, and renames it away
            return sorted(n for n in os.listdir(self.dir)
                          if n.endswith('.eml') and not n.startswith('.'))
        except FileNotFoundError:
            return []

    def messages(self):
        """[{'mail_from': s, 'rcpts': [r...], 'data': bytes}] in arrival order."""
        out = []
        for name in self.files():
            with open(os.path.join(self.dir, name), 'rb') as f:
                raw = f.read()
            head, _, data = raw.partition(b'\n\n')
            msg = {'mail_from': None, 'rcpts': [], 'data': data, 'file': name}
            for line in head.decode('utf-8', 'replace').splitlines():
                if line.startswith('MAIL FROM:'):
                    msg['mail_from'] = _path(line[10:])
                elif line.startswith('RCPT TO:'):
                    msg['rcpts'].append(_path(line[8:]))
            out.append(msg)
        return out

    def wait(self, count=1, timeout=15):
        """Wait until the sink holds count messages; returns messages()."""
        deadline = time.time() + timeout
        while len(self.files()) < count and time.time() < deadline:
            time.sleep(0.05)
        return self.messages()

    def find(self, text, timeout=15):
        """Wait for the messages whose data contain text (bytes or str)."""
        if isinstance(text, str):
            text = text.encode()
        deadline = time.time() + timeout
        while True:
            hits = [m for m in self.messages() if text in m['data']]
            if hits or time.time() > deadline:
                return hits
            time.sleep(0.05)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -- availability --------------------------------------------------------------

_ns_ok = None


def _namespaces_work():
    """(ok, reason): can we bind-mount inside a private mount namespace?"""
    global _ns_ok
    if _ns_ok is None:
        try:
            p = subprocess.run(['unshare', '-m', '--propagation', 'private', 'sh', '-c',
                                'mount --bind /etc/hostname /etc/resolv.conf'],
                               capture_output=True, text=True, timeout=10)
            _ns_ok = (p.returncode == 0, (p.stderr or p.stdout).strip())
        except (OSError, subprocess.SubprocessError) as e:
            _ns_ok = (False, str(e))
    return _ns_ok


def available(kind):
    """(True, '') if peers of this kind can run here, else (False, reason)."""
    if kind not in KINDS:
        return False, 'unknown peer kind %r' % kind
    if os.geteuid() != 0:
        return False, 'the peer lab needs root'
    path = os.path.join(PEERS_DIR, BINARIES[kind])
    if not os.access(path, os.X_OK):
        return False, '%s not found: run sh scripts/deps.sh test (as root)' % path
    users, groups = USERS[kind]
    for u in users:
        try:
            pwd.getpwnam(u)
        except KeyError:
            return False, 'system user %s missing: run sh scripts/peers.sh' % u
    for g in groups:
        try:
            grp.getgrnam(g)
        except KeyError:
            return False, 'system group %s missing: run sh scripts/peers.sh' % g
    ok, why = _namespaces_work()
    if not ok:
        # e.g. in a chroot whose root is not a mount point (bind-mount it onto itself)
        return False, 'no private mount namespace to isolate DNS (%s); unshare -m needs / to be a mount point' % why
    return True, ''


# -- peers ---------------------------------------------------------------------

class Peer:
    """A real MTA of `kind` in `mode`, listening on 127.0.0.1:port (and on
    port of each address in extra_addrs, e.g. 127.0.1.1...).  main_cf: more
    main.cf settings for a postfix peer ({'smtpd_forbid_bare_newline': 'normalize'})."""

    def __init__(self, kind, mode, port=None, extra_addrs=(), start_timeout=30, main_cf=None):
        if kind not in KINDS:
            raise ValueError('kind must be one of %s' % (KINDS,))
        if mode not in MODES:
            raise ValueError('mode must be one of %s' % (MODES,))
        ok, why = available(kind)
        if not ok:
            raise PeerError(why)
        self.kind, self.mode = kind, mode
        self.main_cf = dict(main_cf or {})
        self.host = '127.0.0.1'
        self.addrs = ['127.0.0.1'] + list(extra_addrs)
        self.port = port or free_port()
        self.domain = DOMAIN
        self.hostname = HOSTNAME
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix='rg-peer-%s-' % kind)
        os.chmod(self.dir, 0o755)  # the daemons' users walk through it
        self.relay_sink_dir = os.path.join(self.dir, 'sink-relay')
        self.local_sink_dir = os.path.join(self.dir, 'sink-local')
        self.relay_sink = self.local_sink = None
        self.start_seconds = None
        try:
            self.relay_sink = Sink(self.relay_sink_dir)
            self.local_sink = Sink(self.local_sink_dir)
            self._start(start_timeout)
        except BaseException:
            self.close()
            raise

    # -- process control -------------------------------------------------------
    def _start(self, timeout):
        t0 = time.time()
        self.log_path = os.path.join(self.dir, 'daemon.out')
        resolv = os.path.join(self.dir, 'resolv.conf')
        with open(resolv, 'w') as f:
            f.write('nameserver 127.0.0.1\noptions timeout:1 attempts:1\n')
        os.chmod(resolv, 0o644)
        mounts = ['mount --bind %s /etc/resolv.conf' % resolv]
        argv, env = getattr(self, '_setup_' + self.kind.replace('-', '_'))()
        if self.kind == 'opensmtpd':
            for d in ('spool', 'run'):
                os.makedirs(os.path.join(self.dir, d), mode=0o755)
            mounts.append('mount --bind %s/spool /var/spool' % self.dir)
            mounts.append('mount --bind %s/run /run' % self.dir)
        script = ' && '.join(mounts) + ' && exec "$@"'
        cmd = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'peer'] + argv
        self.command = argv
        out = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     cwd=self.dir, env=env, start_new_session=True)
        out.close()
        self._wait_banner(timeout)
        self.start_seconds = time.time() - t0

    def _wait_banner(self, timeout):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise PeerError('%s exited with status %s at start:\n%s'
                                % (self.kind, self.proc.returncode, self.log()))
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as s:
                    s.settimeout(5)
                    banner = s.recv(512).decode('utf-8', 'replace')
                    if banner.startswith('220'):
                        s.sendall(b'QUIT\r\n')
                        self.banner = banner.strip()
                        return
                    last = banner
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise PeerError('%s gave no 220 banner on port %d within %ss (%s):\n%s'
                        % (self.kind, self.port, timeout, last, self.log()))

    def stop(self, timeout=15):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # this PID only: the daemon's master
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self):
        try:
            self.stop()
        finally:
            for s in (self.relay_sink, self.local_sink):
                if s is not None:
                    s.close()
            if os.environ.get('RG_KEEP') != '1':
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """The daemon's own log and its stdout/stderr, for debugging."""
        parts = []
        for name in self._log_files():
            try:
                with open(name, 'rb') as f:
                    parts.append('== %s\n%s' % (os.path.basename(name),
                                                f.read().decode('utf-8', 'replace')))
            except FileNotFoundError:
                pass
        return '\n'.join(parts)

    def _log_files(self):
        names = [os.path.join(self.dir, 'daemon.out')]
        logdir = os.path.join(self.dir, 'log')
        if os.path.isdir(logdir):
            names += [os.path.join(logdir, n) for n in sorted(os.listdir(logdir))]
        return names

    def _mkdir(self, rel, mode=0o755, user=None, group=None):
        path = os.path.join(self.dir, rel)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
        uid = pwd.getpwnam(user).pw_uid if user else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
        os.chown(path, uid, gid)
        return path

    def _write(self, rel, text):
        path = os.path.join(self.dir, rel)
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    # -- Postfix -----------------------------------------------------------------
    def _setup_postfix(self):
        root = os.path.join(PEERS_DIR, 'postfix')
        conf = self._mkdir('conf')
        queue = self._mkdir('queue')
        for d in ('active', 'bounce', 'corrupt', 'defer', 'deferred', 'flush', 'hold',
                  'incoming', 'private', 'saved', 'trace'):
            self._mkdir('queue/' + d, 0o700, 'postfix')
        self._mkdir('queue/maildrop', 0o730, 'postfix', 'postdrop')
        self._mkdir('queue/public', 0o710, 'postfix', 'postdrop')
        self._mkdir('queue/pid', 0o755)
        self._mkdir('data', 0o700, 'postfix')
        self._mkdir('log', 0o755)
        libdir = os.path.join(root, 'usr/lib/postfix')
        relay = {
            # Postfix refuses a bare 'permit': the classic open relay is
            # mynetworks = 0.0.0.0/0 (below) with the default restrictions.
            'open': 'permit_mynetworks, reject_unauth_destination',
            'secure': 'permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination',
            'sender-hole': 'permit_mynetworks, permit_sasl_authenticated,'
                           ' check_sender_access inline:{ %s=OK }, defer_unauth_destination'
                           % DOMAIN,
        }[self.mode]
        main = {
            'compatibility_level': '3.6',
            'queue_directory': queue,
            'data_directory': os.path.join(self.dir, 'data'),
            'command_directory': os.path.join(root, 'usr/sbin'),
            'daemon_directory': os.path.join(root, 'usr/lib/postfix/sbin'),
            'shlib_directory': libdir,
            'meta_directory': os.path.join(root, 'etc/postfix'),
            'mail_owner': 'postfix',
            'setgid_group': 'postdrop',
            'import_environment': 'MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C'
                                  ' LD_LIBRARY_PATH=%s' % libdir,
            'maillog_file': os.path.join(self.dir, 'log', 'maillog'),
            'maillog_file_prefixes': self.dir,
            'myhostname': HOSTNAME,
            'mydomain': DOMAIN,
            'myorigin': '$mydomain',
            'mydestination': '$mydomain, $myhostname',
            # extra addresses are bound by master.cf; they are not interface
            # addresses, which inet_interfaces insists on
            'inet_interfaces': '127.0.0.1',
            'inet_protocols': 'ipv4',
            'mynetworks': '0.0.0.0/0' if self.mode == 'open' else '127.0.0.1/32',
            'smtpd_relay_restrictions': relay,
            'local_recipient_maps': '',
            'alias_maps': '',
            'alias_database': '',
            # every route is an IP literal; no DNS at all
            'relayhost': '[127.0.0.1]:%d' % self.relay_sink.port,
            'transport_maps': 'inline:{ %s=smtp:[127.0.0.1]:%d, %s=smtp:[127.0.0.1]:%d }'
                              % (DOMAIN, self.local_sink.port, HOSTNAME, self.local_sink.port),
            # Postfix's own address literals ([127.0.0.1]) are local: never
            # let its local(8) write a real mailbox, hand them to the sink too.
            'local_transport': 'smtp:[127.0.0.1]:%d' % self.local_sink.port,
            'disable_dns_lookups': 'yes',
            'smtp_host_lookup': 'native',
            'smtp_dns_support_level': 'disabled',
            'smtpd_peername_lookup': 'no',
            'smtp_tls_security_level': 'none',
            'smtpd_tls_security_level': 'none',
            'biff': 'no',
            'smtpd_banner': '$myhostname ESMTP $mail_name (Debian/GNU)',
        }
        main.update(self.main_cf)
        self._write('conf/main.cf', ''.join('%s = %s\n' % kv for kv in main.items()))
        smtpd = ''.join('%s:%d inet n - n - - smtpd\n' % (a, self.port) for a in self.addrs)
        master = smtpd + '''\
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
'''
        self._write('conf/master.cf', master)
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'LD_LIBRARY_PATH': libdir}
        return [os.path.join(root, 'usr/lib/postfix/sbin/master'), '-c', conf, '-d'], env

    # -- Exim ----------------------------------------------------------------------
    def _setup_exim(self):
        root = os.path.join(PEERS_DIR, 'exim')
        exim = os.path.join(root, 'usr/sbin/exim4')
        self._mkdir('spool', 0o750, 'Debian-exim', 'Debian-exim')
        self._mkdir('log', 0o750, 'Debian-exim', 'Debian-exim')
        relay_from = '*' if self.mode == 'open' else '127.0.0.1'
        sender_hole = ''
        if self.mode == 'sender-hole':
            sender_hole = '  accept senders = *@%s\n\n' % DOMAIN
        conf = EXIM_CONF.format(
            hostname=HOSTNAME, domain=DOMAIN, relay_from=relay_from, exim=exim,
            spool=os.path.join(self.dir, 'spool'), log=os.path.join(self.dir, 'log'),
            port=self.port, interfaces=' ; '.join(self.addrs),
            sender_hole=sender_hole, local_port=self.local_sink.port,
            relay_port=self.relay_sink.port)
        path = self._write('exim.conf', conf)
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin'}
        # -bdf: daemon in the foreground; -q30s retries anything deferred.
        return [exim, '-C', path, '-bdf', '-q30s'], env

    # -- OpenSMTPD -----------------------------------------------------------------
    def _setup_opensmtpd(self):
        root = os.path.join(PEERS_DIR, 'opensmtpd')
        listen = ''.join('listen on %s port %d hostname "%s"\n' % (a, self.port, HOSTNAME)
                         for a in self.addrs)
        rules = {
            'open': 'match from any for any action "relay"\n',
            # Debian's smtpd.conf rule; "local" is the socket and the
            # loopback addresses of lo, and 127.0.0.9 is not one of those.
            'secure': 'match from local for any action "relay"\n',
            'sender-hole': 'match from local for any action "relay"\n'
                           'match from any mail-from "@%s" for any action "relay"\n' % DOMAIN,
        }[self.mode]
        conf = '''\
# OpenSMTPD peer (%(mode)s) for relayguard's lab: every route is a sink on 127.0.0.1
%(listen)s
action "local" relay host "smtp://127.0.0.1:%(lport)d"
action "relay" relay host "smtp://127.0.0.1:%(rport)d"

match from any for domain "%(domain)s" action "local"
match from any for domain "%(hostname)s" action "local"
%(rules)s''' % {'mode': self.mode, 'listen': listen, 'lport': self.local_sink.port,
                 'rport': self.relay_sink.port, 'domain': DOMAIN, 'hostname': HOSTNAME,
                 'rules': rules}
        path = self._write('smtpd.conf', conf)
        env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin'}
        return [os.path.join(root, 'usr/sbin/smtpd'), '-d', '-f', path], env


# Exim: Debian's default ACLs (exim4-config, acl_check_rcpt) with the routing
# replaced by two manualroute routers into the sinks.
EXIM_CONF = '''\
primary_hostname = {hostname}
qualify_domain = {domain}
domainlist local_domains = {domain} : {hostname}
domainlist relay_to_domains =
hostlist relay_from_hosts = <; {relay_from}
exim_path = {exim}
spool_directory = {spool}
log_file_path = {log}/%slog
pid_file_path = {spool}/exim.pid
daemon_smtp_ports = {port}
local_interfaces = <; {interfaces}
keep_environment =
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
tls_advertise_hosts =
smtp_banner = $smtp_active_hostname ESMTP Exim $version_number $tod_full
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
message_size_limit = 50M
ignore_bounce_errors_after = 10m
timeout_frozen_after = 1d
log_selector = +smtp_connection +smtp_protocol_error +smtp_syntax_error +received_recipients

begin acl

acl_check_rcpt:
  accept hosts = :

  deny domains = +local_domains
       local_parts = ^[.] : ^.*[@%!/|`#&?]
       message = restricted characters in address

  deny domains = !+local_domains
       local_parts = ^[./|] : ^.*[@%!`#&?] : ^.*/\\\\.\\\\./
       message = restricted characters in address

  accept local_parts = postmaster
         domains = +local_domains

{sender_hole}  accept hosts = +relay_from_hosts
         control = submission/sender_retain

  accept authenticated = *
         control = submission/sender_retain

  require message = relay not permitted
          domains = +local_domains : +relay_to_domains

  require verify = recipient

  accept

acl_check_data:
  accept

begin routers

local_sink:
  driver = manualroute
  domains = +local_domains
  route_list = * 127.0.0.1
  self = send
  transport = local_sink
  no_more

relay_sink:
  driver = manualroute
  domains = ! +local_domains
  route_list = * 127.0.0.1
  self = send
  transport = relay_sink
  no_more

begin transports

local_sink:
  driver = smtp
  port = {local_port}
  allow_localhost
  hosts_avoid_tls = *

relay_sink:
  driver = smtp
  port = {relay_port}
  allow_localhost
  hosts_avoid_tls = *

begin retry

*  *  F,1h,30s

begin rewrite
'''
