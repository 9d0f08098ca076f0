"""dkimpy_tool.py - python3-dkim (dkimpy) as an independent signer and verifier.

Run with Debian's own /usr/bin/python3 (where python3-dkim is installed) by
test_dkim_interop.py; the message is read from standard input.

  dkimpy_tool.py sign SELECTOR DOMAIN KEYFILE ALG CANON   prints the signed message
      ALG rsa-sha256|ed25519-sha256; CANON e.g. relaxed/simple; KEYFILE PEM
      (RSA) or the base64 Ed25519 seed (dkimpy's format)
  dkimpy_tool.py verify DNSPORT                          prints pass/fail per signature
      keys are looked up at 127.0.0.1:DNSPORT (the test's dnsmasq)
  dkimpy_tool.py edkey SEEDFILE                           prints the p= value of a seed
"""
import base64
import sys

import dkim


def sign(selector, domain, keyfile, alg, canon):
    msg = sys.stdin.buffer.read()
    key = open(keyfile, 'rb').read()
    c = canon.split('/')
    sig = dkim.sign(msg, selector.encode(), domain.encode(), key,
                    signature_algorithm=alg.encode(),
                    canonicalize=(c[0].encode(), c[-1].encode()),
                    include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
    sys.stdout.buffer.write(sig + msg)


def verify(port):
    import dns.resolver
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ['127.0.0.1']
    res.port = int(port)

    def dnsfunc(name, timeout=5):
        try:
            answer = res.resolve(name.decode().rstrip('.'), 'TXT', lifetime=timeout)
        except Exception:  # NXDOMAIN, NODATA: dkimpy wants None
            return None
        for rr in answer:
            return b''.join(rr.strings)
        return None

    msg = sys.stdin.buffer.read()
    d = dkim.DKIM(msg)
    n = len([line for line in msg.split(b'\n\n')[0].replace(b'\r', b'').split(b'\n')
             if line.lower().startswith(b'dkim-signature:')])
    results = []
    for i in range(n):
        try:
            results.append('pass' if d.verify(idx=i, dnsfunc=dnsfunc) else 'fail')
        except dkim.DKIMException as e:
            results.append('fail (%s)' % e)
    print(','.join(results) or 'none')


def edkey(seedfile):
    import nacl.signing
    seed = base64.b64decode(open(seedfile, 'rb').read())
    print(base64.b64encode(bytes(nacl.signing.SigningKey(seed).verify_key)).decode())


if __name__ == '__main__':
    {'sign': sign, 'verify': verify, 'edkey': edkey}[sys.argv[1]](*sys.argv[2:])
