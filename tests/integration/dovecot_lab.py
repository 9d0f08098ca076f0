"""dovecot_lab.py - a real Dovecot auth service on loopback, for SMTP AUTH tests.

    with Dovecot(users={'alice@example.com': 'pw'}) as dv:
        dv.socket_path     # unix socket of the auth-client listener
        dv.inet            # 'inet:127.0.0.1:PORT', the same service over TCP
        dv.stop(); dv.start()   # restart tests
        dv.log()           # Dovecot's log

Everything lives in one temporary directory: dovecot.conf, the passwd-file,
base_dir (run/), state_dir and the log. Dovecot runs in the foreground
(dovecot -F) as a child of the test, so it is stopped by its own PID only.
No mail protocols are served (protocols is empty): only the auth service,
listening on a unix socket in the directory and on 127.0.0.1.

A user's value is a password (hashed as SHA512-CRYPT) or a pair
(password, scheme) with a scheme `doveadm pw` knows: SHA512-CRYPT,
BLF-CRYPT, PLAIN, ... Hashes are made with `doveadm pw` from dovecot-core.

Dovecot must run as root (it switches to its users dovecot and dovenull,
which the Debian package creates); skip_reason() says why the lab cannot run.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import harness

DEFAULT_SCHEME = 'SHA512-CRYPT'
PACKAGE = 'dovecot-core'  # what provides the lab, for harness.require()


def skip_reason():
    """None when a lab can run here, else why not (for unittest.skip)."""
    for tool in ('dovecot', 'doveadm'):
        if shutil.which(tool) is None:
            return '%s is not installed (sh scripts/deps.sh test installs dovecot-core)' % tool
    if os.geteuid() != 0:
        return 'the Dovecot lab runs dovecot as root'
    for user in ('dovecot', 'dovenull'):
        try:
            import pwd
            pwd.getpwnam(user)
        except KeyError:
            return 'system user %s is missing (the dovecot-core package creates it)' % user
    return None


def hash_password(password, scheme=DEFAULT_SCHEME):
    """The passwd-file field for PASSWORD (str or bytes), as doveadm pw makes it."""
    out = subprocess.run(['doveadm', 'pw', '-s', scheme, '-p', password],
                         capture_output=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError('doveadm pw -s %s failed: %s' % (scheme, out.stderr.decode(errors='replace')))
    return out.stdout.decode().strip()


def _stat(pid):
    """(ppid, start time, state) of PID from /proc, or None when it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return int(fields[1]), fields[19], fields[0]
    except (OSError, IndexError, ValueError):
        return None


def _children(ppid):
    """[(pid, start time)] of the processes whose parent is PPID."""
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None and st[0] == ppid:
                found.append((int(name), st[1]))
    return found


def _same_process(pid, start):
    """PID is still the process that started at START, and not a zombie."""
    st = _stat(pid)
    return st is not None and st[1] == start and st[2] != 'Z'


class DovecotError(AssertionError):
    pass


class Dovecot:
    """Dovecot's auth service with its own config; see the module comment.

    mechanisms: auth_mechanisms (without 'plain' the client must refuse).
    """

    def __init__(self, users=None, mechanisms='plain login', start=True):
        self.dir = tempfile.mkdtemp(prefix='relayguard-dovecot-')
        os.chmod(self.dir, 0o755)  # the auth process runs as user dovecot
        self.conf_path = os.path.join(self.dir, 'dovecot.conf')
        self.passwd_path = os.path.join(self.dir, 'users')
        self.log_path = os.path.join(self.dir, 'dovecot.log')
        self.run_dir = os.path.join(self.dir, 'run')
        self.socket_path = os.path.join(self.dir, 'auth-client')
        self.port = harness.free_port()
        self.inet = 'inet:127.0.0.1:%d' % self.port
        self.proc = None
        self._write_passwd(users or {})
        self._write_conf(mechanisms)
        if start:
            self.start()

    def _write_passwd(self, users):
        lines = []
        for name, value in users.items():
            password, scheme = value if isinstance(value, tuple) else (value, DEFAULT_SCHEME)
            lines.append('%s:%s\n' % (name, hash_password(password, scheme)))
        with open(self.passwd_path, 'w') as f:
            f.writelines(lines)
        os.chmod(self.passwd_path, 0o644)

    def _write_conf(self, mechanisms):
        conf = """\
# relayguard test lab: Dovecot's auth service only, on loopback.
base_dir = {run}
state_dir = {dir}/state
instance_name = relayguard-lab-{port}
log_path = {log}
protocols =
listen = 127.0.0.1
ssl = no
auth_mechanisms = {mechs}
# Enforced by Dovecot's login processes, not by its auth service (which
# accepts PLAIN from an auth client either way): relayguard's own
# smtpd_tls_auth_only is what keeps PLAIN off unencrypted sessions.
disable_plaintext_auth = no
# Answer failures at once: the tests are not about brute-force delays.
auth_failure_delay = 0
auth_verbose = yes
# Logins are case-insensitive; Dovecot answers with the canonical (lower-case) name.
auth_username_format = %Lu
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme={scheme} {passwd}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener {sock} {{
    mode = 0666
  }}
  inet_listener auth_inet {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""".format(run=self.run_dir, dir=self.dir, log=self.log_path, port=self.port,
           mechs=mechanisms, scheme=DEFAULT_SCHEME,
           passwd=self.passwd_path, sock=self.socket_path)
        with open(self.conf_path, 'w') as f:
            f.write(conf)

    # -- process control -------------------------------------------------
    def start(self, timeout=15):
        with open(self.log_path + '.stderr', 'ab') as errf:
            self.proc = subprocess.Popen(['dovecot', '-F', '-c', self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                         cwd=self.dir)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise DovecotError('dovecot exited with %s at start:\n%s'
                                   % (self.proc.returncode, self.log()))
            if os.path.exists(self.socket_path) and self._port_open():
                return self
            time.sleep(0.05)
        self.stop()
        raise DovecotError('dovecot did not listen within %ss:\n%s' % (timeout, self.log()))

    def _port_open(self):
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout=15):
        """Stop our dovecot master and its children, by PID, and wait for them.

        The children (auth, anvil, log, ...) are found by parent PID and get
        SIGTERM together with the master: alone, the master takes seconds to
        wind them down, and an auth process with a client still connected
        outlives it. A stopped lab must have every socket dead.
        """
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        procs = [(proc.pid, None)] + _children(proc.pid)
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, timeout)):
            for pid, start in procs:
                if pid == proc.pid:
                    if proc.poll() is None:
                        proc.send_signal(sig)
                elif _same_process(pid, start):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            deadline = time.time() + grace
            while time.time() < deadline and self._any_alive(proc, procs):
                time.sleep(0.02)
            if not self._any_alive(proc, procs):
                break
        proc.wait()

    @staticmethod
    def _any_alive(proc, procs):
        return proc.poll() is None or any(_same_process(pid, start)
                                          for pid, start in procs if pid != proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        if os.environ.get('RG_KEEP') != '1':
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.cleanup()
        return False

    # -- observation -----------------------------------------------------
    def log(self):
        text = ''
        for path in (self.log_path, self.log_path + '.stderr'):
            try:
                with open(path, 'rb') as f:
                    text += f.read().decode('utf-8', 'replace')
            except FileNotFoundError:
                pass
        return text
