"""harness.py - start relayguard on loopback and talk SMTP to it.

Everything here stays on 127.0.0.0/8 and ::1.  Clients are bound to
UNTRUSTED (127.0.0.9) by default: the Server's mynetworks is only
127.0.0.1/32 and [::1]/128, so 127.0.0.9 is "the Internet" and 127.0.0.1
is a trusted network client.

Environment:
  RELAYGUARD_BIN   the binary to test (default: build/relayguard under the repo)
  RG_KEEP          set to 1 to keep each server's temporary directory
  CI               when "true", a test whose component is missing fails (require())
"""
import os
import random
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import functools
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNTRUSTED = '127.0.0.9'
UNTRUSTED2 = '127.0.0.10'
TRUSTED = '127.0.0.1'
HOSTNAME = 'mx.relayguard.test'
SANITIZER_MARKERS = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:')
ENHANCED = re.compile(r'^[245]\.\d{1,3}\.\d{1,3}( |$)')


def binary():
    b = os.environ.get('RELAYGUARD_BIN', os.path.join(REPO, 'build', 'relayguard'))
    return b if os.path.isabs(b) else os.path.join(REPO, b)


# The harness's default_transport: mail for other domains is deferred with this text.
OUTBOUND_OFF = 'error:4.3.2 outbound delivery is off in this test'


def port_range():
    """(first, end) of the ports free_port() picks from, or None for any free one.

    Below the kernel's ephemeral range: a port taken from there can be given
    to an outgoing connection or another bind(0) between the test's check and
    the server's listen (Address already in use). run.py -j gives each file
    running at once its own share (RG_PORT_SLOT=k/n), so they never pick alike.
    """
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return None
    if lo - 1024 >= 4096:
        first, end = max(1024, lo - 16384), lo
    elif 65535 - hi >= 4096:
        first, end = hi + 1, 65536
    else:
        return None
    try:
        slot, slots = (int(x) for x in os.environ.get('RG_PORT_SLOT', '0/1').split('/'))
    except ValueError:
        slot, slots = 0, 1
    size = (end - first) // max(slots, 1)
    if size < 256 or not 0 <= slot < slots:
        return None
    return first + slot * size, first + (slot + 1) * size


_ports_given = set()  # by free_port() in this process: never twice


def free_port(host='127.0.0.1'):
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    span = port_range()
    if span is not None:
        if len(_ports_given) > (span[1] - span[0]) // 2:
            _ports_given.clear()
        for _ in range(100):
            port = random.randrange(*span)
            if port in _ports_given:
                continue
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _ports_given.add(port)
            return port
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


def in_ci():
    """True under CI=true, where nothing may be skipped for a missing component."""
    return os.environ.get('CI', '').strip().lower() in ('true', '1', 'yes')


def require(condition, package, why):
    """Go on only if CONDITION holds; else skip, or under CI=true fail.

    PACKAGE names the Debian package (or the set-up step) that provides what
    is missing, WHY says what the test needs it for.  Outside CI a developer's
    machine without it skips the test; a CI run must never pass by skipping,
    so there the test fails and says what to install.  Works in setUp,
    setUpClass and test methods (an exception in setUpClass fails the class).
    """
    if condition:
        return
    msg = '%s (needs %s)' % (why, package)
    if in_ci():
        raise AssertionError('CI=true, so not skipped: ' + msg)
    raise unittest.SkipTest(msg)


def requires(condition, package, why):
    """require() as a decorator of a test method or a TestCase class."""
    def deco(obj):
        if condition:
            return obj
        if isinstance(obj, type):
            # the class's own setUpClass would need the component: replace it
            obj.setUpClass = classmethod(lambda cls: require(False, package, why))
            return obj

        @functools.wraps(obj)
        def missing(*args, **kwargs):
            require(False, package, why)
        return missing
    return deco


def run_cli(args, timeout=10):
    """Run the binary with args; returns CompletedProcess with text output."""
    return subprocess.run([binary()] + list(args), capture_output=True, text=True,
                          timeout=timeout, errors='replace')


def vm_rss_kib(pid):
    """Resident memory of a process, in KiB (0 if unknown)."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def sanitizer_report(text):
    return [m for m in SANITIZER_MARKERS if m in text]


class ServerError(AssertionError):
    pass


class Server:
    """A relayguard process with its own config, queue and mailboxes.

    Server(overrides={'param': 'value'}, extra='raw main.cf text', ipv6=False,
           args=['--log-format', 'json'], start=True)
    Use as a context manager, or call start()/stop() yourself.
    """

    def __init__(self, overrides=None, extra='', ipv6=False, args=(), start=True,
                 hostname=HOSTNAME):
        self.dir = tempfile.mkdtemp(prefix='relayguard-it-')
        os.chmod(self.dir, 0o755)  # the server runs as 'relayguard' when we are root
        self.port = free_port()
        self.ipv6 = ipv6 and ipv6_available()
        self.port6 = free_port('::1') if self.ipv6 else None
        self.sub_port = free_port()   # submission (587's role): STARTTLS, AUTH
        self.subs_port = free_port()  # submissions (465's role): implicit TLS
        self.queue_dir = os.path.join(self.dir, 'queue')
        self.mail_dir = os.path.join(self.dir, 'mail')
        self.config_path = os.path.join(self.dir, 'main.cf')
        self.log_path = os.path.join(self.dir, 'server.log')
        self.args = list(args)
        self.proc = None
        self.hostname = hostname
        listen = '127.0.0.1:%d' % self.port
        if self.ipv6:
            listen += ', [::1]:%d' % self.port6
        params = {
            'myhostname': hostname,
            'smtpd_listen': listen,
            'submission_listen': '127.0.0.1:%d' % self.sub_port,
            'submissions_listen': '127.0.0.1:%d' % self.subs_port,
            'data_directory': os.path.join(self.dir, 'data'),
            'queue_directory': self.queue_dir,
            'virtual_mailbox_base': self.mail_dir,
            'mynetworks': '127.0.0.1/32 [::1]/128',
            # never let a test's mail for other domains reach the network: it is
            # deferred unless the test routes it to a peer on loopback
            'default_transport': OUTBOUND_OFF,
        }
        params.update(overrides or {})
        with open(self.config_path, 'w') as f:
            for k, v in params.items():
                if v is not None:
                    f.write('%s = %s\n' % (k, v))
            if extra:
                f.write(extra if extra.endswith('\n') else extra + '\n')
        self._log_offset = 0
        if start:
            self.start()

    # -- process control -------------------------------------------------
    def start(self, timeout=10):
        logf = open(self.log_path, 'ab')
        self._log_offset = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen([binary(), 'serve', '-c', self.config_path] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                     cwd=self.dir)
        logf.close()
        want = 2 if self.ipv6 else 1
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log()[self._log_offset:]
            if len(re.findall(r'( info listening address=|"event":"listening")', text)) >= want:
                return self
            if self.proc.poll() is not None:
                raise ServerError('relayguard exited with %s at start:\n%s'
                                  % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        self.kill9()
        raise ServerError('relayguard did not log "listening" within %ss:\n%s'
                          % (timeout, self.log()))

    def stop(self, timeout=10, check=True):
        """SIGTERM, wait, assert exit status 0 and no sanitizer report."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ServerError('relayguard did not exit within %ss of SIGTERM:\n%s'
                              % (timeout, self.tail()))
        if check:
            self.check_sanitizers()
            if rc != 0:
                raise ServerError('relayguard exited with status %s after SIGTERM:\n%s'
                                  % (rc, self.tail()))
        return rc

    def kill9(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()  # SIGKILL, to this PID only
        proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_sanitizers(self):
        found = sanitizer_report(self.log())
        if found:
            raise ServerError('sanitizer report (%s) in the server log:\n%s'
                              % (', '.join(found), self.tail(120)))

    def cleanup(self):
        if self.proc is not None:
            self.kill9()
        if os.environ.get('RG_KEEP') != '1':
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop(check=exc_type is None)
        finally:
            self.cleanup()
        return False

    # -- observation -----------------------------------------------------
    def log(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def log_lines(self):
        return self.log().splitlines()

    def tail(self, n=60):
        return '\n'.join(self.log_lines()[-n:])

    def mark(self):
        """A position in the log; log_since(mark) is what came after it."""
        return len(self.log())

    def log_since(self, mark):
        return self.log()[mark:]

    def wait_log(self, pattern, timeout=5, since=0, count=1):
        """Wait until regex pattern matches count times in the log (after since)."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            text = self.log()[since:]
            if len(rx.findall(text)) >= count:
                return text
            if time.time() > deadline:
                return None
            time.sleep(0.02)

    def maildir_path(self, domain, user):
        return os.path.join(self.mail_dir, domain, user)

    def maildir(self, domain, user, sub='new'):
        """Sorted file names in mail/<domain>/<user>/<sub>/ ([] if none)."""
        try:
            return sorted(os.listdir(os.path.join(self.maildir_path(domain, user), sub)))
        except FileNotFoundError:
            return []

    def read_mail(self, domain, user, name):
        with open(os.path.join(self.maildir_path(domain, user), 'new', name), 'rb') as f:
            return f.read()

    def wait_maildir(self, domain, user, count=1, timeout=5):
        deadline = time.time() + timeout
        while True:
            files = self.maildir(domain, user)
            if len(files) >= count or time.time() > deadline:
                return files
            time.sleep(0.02)

    def queue_files(self, sub):
        """Sorted file names in queue/<sub>/ ([] if none)."""
        try:
            return sorted(os.listdir(os.path.join(self.queue_dir, sub)))
        except FileNotFoundError:
            return []

    def wait_queue_empty(self, sub='active', timeout=5):
        deadline = time.time() + timeout
        while self.queue_files(sub) and time.time() < deadline:
            time.sleep(0.02)
        return self.queue_files(sub)

    def all_mail(self):
        """Every file under the mailbox base's new/ directories."""
        out = []
        for root, _dirs, files in os.walk(self.mail_dir):
            if os.path.basename(root) == 'new':
                out.extend(os.path.join(root, f) for f in files)
        return out


# -- SMTP clients -----------------------------------------------------------

def tls_context(minimum=None, maximum=None, ciphers=None):
    """A client TLS context that accepts the server's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


class Conn:
    """A raw SMTP connection: send bytes, read whole (multi-line) replies.
    tls=True: implicit TLS (the submissions port) from the first byte."""

    def __init__(self, port, source=UNTRUSTED, host='127.0.0.1', timeout=5, greeting=True,
                 tls=False, context=None):
        fam = socket.AF_INET6 if ':' in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        if tls:
            self.sock = (context or tls_context()).wrap_socket(self.sock)
        self.buf = b''
        self.greeting = self.reply() if greeting else None

    def starttls(self, context=None):
        """After the server's 220 to STARTTLS: run the handshake on this socket."""
        self.sock = (context or tls_context()).wrap_socket(self.sock)
        return self.sock.version()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _line(self):
        while b'\r\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b''
                    return line
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def reply(self):
        """(code, text) of one reply, lines joined by '\\n'; None on EOF."""
        lines = []
        while True:
            line = self._line()
            if line is None:
                return None if not lines else (lines[0][0], '\n'.join(t for _, t in lines))
            text = line.decode('utf-8', 'replace')
            code = int(text[:3]) if text[:3].isdigit() else None
            lines.append((code, text[4:]))
            if len(text) < 4 or text[3] != '-':
                return (code, '\n'.join(t for _, t in lines))

    def raw_reply_lines(self):
        """The raw lines of one reply (for checking the continuation syntax)."""
        out = []
        while True:
            line = self._line()
            if line is None:
                return out
            out.append(line.decode('utf-8', 'replace'))
            if len(line) < 4 or line[3:4] != b'-':
                return out

    def cmd(self, line):
        if isinstance(line, str):
            line = line.encode()
        if not line.endswith(b'\r\n'):
            line += b'\r\n'
        self.send(line)
        return self.reply()

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def closed(self, timeout=3):
        """True when the server has closed the connection (EOF or reset)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if self.buf:
                    self.buf = b''
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def smtp_session(port, lines, source=UNTRUSTED, timeout=5, host='127.0.0.1'):
    """Send each line (CRLF appended) and return the replies as (code, text).

    The first element is the greeting.  After a 354 reply, lines are message
    text and get no reply until the line '.'.  A reply of None means the
    server closed the connection; the session stops there.
    """
    out = []
    with Conn(port, source=source, host=host, timeout=timeout) as c:
        out.append(c.greeting)
        in_data = False
        for line in lines:
            if isinstance(line, str):
                line = line.encode()
            c.send(line + b'\r\n')
            if in_data and line != b'.':
                continue
            r = c.reply()
            out.append(r)
            if r is None:
                break
            in_data = r[0] == 354
    return out


def smtp_client(port, source=UNTRUSTED, local_hostname='client.example.org', timeout=5):
    """smtplib.SMTP connected to the server from a chosen source address."""
    return smtplib.SMTP('127.0.0.1', port, local_hostname=local_hostname, timeout=timeout,
                        source_address=(source, 0))


def swaks(port, args, source=UNTRUSTED, timeout=15):
    """Run swaks against the server; returns (exit status, stdout+stderr)."""
    cmd = ['swaks', '--server', '127.0.0.1:%d' % port, '--local-interface', source,
           '--timeout', '5'] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors='replace')
    return p.returncode, p.stdout + p.stderr


def has_enhanced_code(text):
    """Every line of a reply's text starts with an RFC 3463 enhanced status code."""
    return all(ENHANCED.match(line) for line in text.split('\n'))


def stop_server(server, tmp=None):
    """A class's server stopped and its files removed, then tmp (a directory) too."""
    try:
        server.stop()
    finally:
        server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def build_shim(cls, source, name):
    """Compile SOURCE (C) into an LD_PRELOAD library for CLS's tests; removed
    with the class. The path of the library."""
    tmp = tempfile.mkdtemp(prefix='relayguard-shim-')
    os.chmod(tmp, 0o755)
    cls.addClassCleanup(shutil.rmtree, tmp, True)
    src, lib = os.path.join(tmp, name + '.c'), os.path.join(tmp, name + '.so')
    with open(src, 'w') as f:
        f.write(source)
    subprocess.run(['cc', '-shared', '-fPIC', '-o', lib, src, '-ldl'], check=True)
    return lib


def preloaded_server(shim, env=None, **server_args):
    """A Server started with SHIM preloaded (and ENV set) in its environment only."""
    saved = dict(os.environ)
    os.environ.update({'LD_PRELOAD': shim, 'ASAN_OPTIONS': os.environ.get('ASAN_OPTIONS', '') +
                       ':verify_asan_link_order=0'})
    os.environ.update(env or {})
    try:
        return Server(**server_args)
    finally:
        os.environ.clear()
        os.environ.update(saved)


class ServerPerClass(unittest.TestCase):
    """One Server for all tests of a class: set overrides / extra on the class."""
    overrides = None
    extra = ''

    @classmethod
    def setUpClass(cls):
        cls.server = Server(overrides=cls.overrides, extra=cls.extra)

    @classmethod
    def tearDownClass(cls):
        stop_server(cls.server)
