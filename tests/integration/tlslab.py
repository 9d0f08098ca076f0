"""tlslab.py - a test certificate authority and server certificates it signs.

    ca = TestCA(directory)                 # ca.cert: the CA's PEM (smtp_tls_CAfile)
    cert, key = ca.issue('mx.fake.test')   # a leaf for that name (and more names)

Everything is made with the openssl command line in directory; nothing leaves it.
"""
import os
import subprocess


def _openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, capture_output=True)


class TestCA:
    def __init__(self, directory, name='relayguard test CA'):
        self.dir = directory
        self.cert = os.path.join(directory, 'ca.pem')
        self.key = os.path.join(directory, 'ca-key.pem')
        _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', self.key,
                 '-out', self.cert, '-days', '2', '-subj', '/CN=' + name,
                 '-addext', 'basicConstraints=critical,CA:TRUE',
                 '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
        self.serial = 1

    def issue(self, *names):
        """(cert, key) paths of a server certificate for names, signed by this CA."""
        base = os.path.join(self.dir, '%s-%d' % (names[0], self.serial))
        key, csr, cert = base + '-key.pem', base + '.csr', base + '.pem'
        ext = base + '.ext'
        with open(ext, 'w') as f:
            f.write('subjectAltName=%s\nextendedKeyUsage=serverAuth\n'
                    % ','.join('DNS:' + n for n in names))
        _openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr,
                 '-subj', '/CN=' + names[0])
        _openssl('x509', '-req', '-in', csr, '-CA', self.cert, '-CAkey', self.key,
                 '-set_serial', str(self.serial), '-days', '2', '-out', cert, '-extfile', ext)
        self.serial += 1
        return cert, key

    def chain(self, cert):
        """A file with cert and then this CA: what a server sends for DANE-TA(2)."""
        path = cert[:-4] + '-chain.pem'
        with open(path, 'w') as out, open(cert) as c, open(self.cert) as ca:
            out.write(c.read() + ca.read())
        return path
