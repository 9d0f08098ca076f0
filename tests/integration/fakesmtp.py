"""fakesmtp.py - a scripted SMTP server on 127.0.0.1 for probe edge cases.

    with FakeSMTP(Policy()) as srv:      # srv.port, srv.sessions
        ...

A Policy decides every reply; subclasses override one method to make a
server that greylists, drops sessions, answers slowly, refuses EHLO, and so
on. A reply is a string (lines joined by '\\n' become a multi-line reply),
bytes (sent exactly as they are: malformed replies), SILENT (answer nothing,
keep the connection open), or None to close the connection without a word.
Everything is recorded in srv.sessions (one dict per connection: tls,
commands, messages as received (dot-stuffed), bodies (unstuffed bytes)).
"""
import os
import socket
import ssl
import subprocess
import threading

OWN = ('mx.fake.test', 'fake.test', '[127.0.0.1]')
SILENT = 'SILENT'


def domain_of(path):
    """The part after the last '@' of a path (without <>), lower case."""
    path = path.strip().strip('<>').rstrip('@')
    return path.rsplit('@', 1)[1].lower() if '@' in path else ''


def path_arg(line):
    """'MAIL FROM:<x> SIZE=1' -> 'x'."""
    rest = line.split(':', 1)[1] if ':' in line else ''
    rest = rest.strip()
    if rest.startswith('<') and '>' in rest:
        return rest[1:rest.rindex('>')]
    return rest


class Policy:
    """A secure server: final destination for fake.test, relays for nobody."""
    banner = '220 mx.fake.test ESMTP fake'
    starttls = False

    def greeting(self, sess):
        return self.banner

    def ehlo(self, sess, verb, arg):
        if verb == 'HELO':
            return '250 mx.fake.test'
        caps = ['mx.fake.test Hello', 'PIPELINING', '8BITMIME']
        if self.starttls and not sess['tls']:
            caps.append('STARTTLS')
        return '\n'.join('250 ' + c for c in caps)

    def mail(self, sess, path):
        return '250 2.1.0 Ok'

    def local(self, path):
        """Is this one of our addresses, without routing?"""
        local = path.rsplit('@', 1)[0] if '@' in path else path
        return domain_of(path) in OWN and not any(ch in local for ch in '%!@"')

    def rcpt(self, sess, path):
        if self.local(path) and path.lower() == 'postmaster@fake.test':
            return '250 2.1.5 Ok'
        if self.local(path):
            return '550 5.1.1 <%s>: Recipient address rejected: User unknown' % path
        return '554 5.7.1 <%s>: Relay access denied' % path

    def data(self, sess):
        """'354' to take the message, or the reply to DATA."""
        return '354'

    def data_end(self, sess, body):
        return '250 2.0.0 Ok: queued'

    def other(self, sess, verb, line):
        if verb in ('RSET', 'NOOP'):
            return '250 2.0.0 Ok'
        if verb == 'QUIT':
            return '221 2.0.0 Bye'
        return '502 5.5.2 Error: command not recognized'

    def before_command(self, sess, line):
        """Return a reply to override normal handling (e.g. a 421), or False."""
        return False


def make_cert(directory):
    """A self-signed certificate for mx.fake.test; returns (cert, key) paths."""
    cert = os.path.join(directory, 'cert.pem')
    key = os.path.join(directory, 'key.pem')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                    '-out', cert, '-days', '2', '-subj', '/CN=mx.fake.test',
                    '-addext', 'subjectAltName=DNS:mx.fake.test'],  # names are DNS-IDs
                   check=True, capture_output=True)
    return cert, key


class FakeSMTP:
    def __init__(self, policy, implicit_tls=False, certs=None, host='127.0.0.1', port=0):
        self.policy = policy
        self.sessions = []
        self.lock = threading.Lock()
        self.ctx = None
        if certs is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(*certs)
        self.implicit_tls = implicit_tls
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept(): the port is free
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn, peer):
        sess = {'peer': peer[0], 'tls': False, 'commands': [], 'messages': [], 'bodies': [],
                'rejections': 0}
        with self.lock:
            self.sessions.append(sess)
        conn.settimeout(20)
        try:
            if self.implicit_tls:
                conn = self.ctx.wrap_socket(conn, server_side=True)
                sess['tls'] = True
            self._dialogue(conn, sess)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _silent(self, conn):
        """Read and ignore until the client gives up or the server stops."""
        conn.settimeout(0.2)
        while not self.stopping:
            try:
                if not conn.recv(4096):
                    return
            except socket.timeout:
                continue

    @staticmethod
    def _send(conn, reply):
        if isinstance(reply, bytes):
            conn.sendall(reply)
            return
        lines = reply.split('\n')
        out = []
        for i, line in enumerate(lines):
            sep = ' ' if i == len(lines) - 1 else '-'
            out.append(line[:3] + sep + line[4:] if len(line) > 3 else line)
        conn.sendall(('\r\n'.join(out) + '\r\n').encode())

    def _dialogue(self, conn, sess):
        p = self.policy
        reader = conn.makefile('rb')
        g = p.greeting(sess)
        if g is None:
            return
        if g == SILENT:
            self._silent(conn)
            return
        self._send(conn, g)
        while True:
            raw = reader.readline(4096)
            if not raw:
                return
            line = raw.decode('latin-1').rstrip('\r\n')
            sess['commands'].append(line)
            verb = line.split(' ', 1)[0].split(':', 1)[0].upper()
            reply = p.before_command(sess, line)
            if reply is False:
                reply = self._dispatch(conn, reader, sess, verb, line)
            if reply == 'STARTTLS-NOW':
                self._send(conn, '220 2.0.0 Ready to start TLS')
                conn = self.ctx.wrap_socket(conn, server_side=True)
                sess['tls'] = True
                reader = conn.makefile('rb')
                continue
            if reply is None:
                return
            if reply == SILENT:
                self._silent(conn)
                return
            if isinstance(reply, str) and reply[:1] in ('4', '5'):
                sess['rejections'] += 1
            self._send(conn, reply)
            if isinstance(reply, str) and (reply.startswith('221') or reply.startswith('421')):
                return

    def _dispatch(self, conn, reader, sess, verb, line):
        p = self.policy
        arg = line.split(' ', 1)[1] if ' ' in line else ''
        if verb in ('EHLO', 'HELO'):
            return p.ehlo(sess, verb, arg)
        if verb == 'STARTTLS' and p.starttls and self.ctx and not sess['tls']:
            return 'STARTTLS-NOW'
        if verb == 'MAIL':
            return p.mail(sess, path_arg(line))
        if verb == 'RCPT':
            return p.rcpt(sess, path_arg(line))
        if verb == 'DATA':
            go = p.data(sess)
            if go != '354':
                return go
            self._send(conn, '354 End data with <CR><LF>.<CR><LF>')
            body = []
            while True:
                raw = reader.readline(65536)
                if not raw:
                    return None
                if raw in (b'.\r\n', b'.\n'):
                    break
                body.append(raw)
            text = b''.join(body).decode('latin-1')
            sess['messages'].append(text)
            sess['bodies'].append(b''.join(r[1:] if r.startswith(b'.') else r for r in body))
            return p.data_end(sess, text)
        return p.other(sess, verb, line)

    def all_commands(self):
        with self.lock:
            return [c for s in self.sessions for c in s['commands']]
