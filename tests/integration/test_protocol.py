"""test_protocol.py - the SMTP dialogue: commands, sequencing, limits, framing."""
import re
import socket
import threading
import time
import unittest

import harness

from harness import (HOSTNAME, TRUSTED, UNTRUSTED, UNTRUSTED2, Conn, Server,
                     has_enhanced_code, smtp_session)

QUEUED = re.compile(r'^2\.0\.0 Ok: queued as [0-9A-F]{16}$')


class ServerPerClass(harness.ServerPerClass):
    def queued_since(self, mark):
        return [l for l in self.server.log_since(mark).splitlines() if ' queued ' in l]


class Commands(ServerPerClass):
    def test_ehlo_advertises_extensions(self):
        with Conn(self.server.port) as c:
            c.send('EHLO client.example.org\r\n')
            lines = c.raw_reply_lines()
        self.assertEqual(lines[0], '250-' + HOSTNAME)
        self.assertTrue(all(l.startswith('250-') for l in lines[:-1]), lines)
        self.assertTrue(lines[-1].startswith('250 '), lines)
        keywords = [l[4:] for l in lines[1:]]
        for kw in ('PIPELINING', 'SIZE 10240000', '8BITMIME', 'STARTTLS', 'ENHANCEDSTATUSCODES'):
            self.assertIn(kw, keywords)
        # nothing that is not implemented (or not enabled: AUTH is off here) may be offered
        for kw in keywords:
            self.assertFalse(kw.startswith(('AUTH', 'CHUNKING', 'SMTPUTF8')), kw)

    def test_helo(self):
        r = smtp_session(self.server.port, ['HELO client.example.org', 'QUIT'])
        self.assertEqual(r[0], (220, HOSTNAME + ' ESMTP relayguard'))
        self.assertEqual(r[1], (250, HOSTNAME))
        self.assertEqual(r[2], (221, '2.0.0 Bye'))

    def test_helo_needs_a_name(self):
        r = smtp_session(self.server.port, ['HELO', 'EHLO', 'QUIT'])
        self.assertEqual(r[1], (501, '5.5.4 Syntax: HELO hostname'))
        self.assertEqual(r[2], (501, '5.5.4 Syntax: EHLO hostname'))

    def test_mail_before_helo(self):
        r = smtp_session(self.server.port, ['MAIL FROM:<a@example.org>', 'QUIT'])
        self.assertEqual(r[1], (503, '5.5.1 Error: send HELO/EHLO first'))

    def test_rcpt_before_mail(self):
        r = smtp_session(self.server.port, ['HELO c.example.org', 'RCPT TO:<postmaster@localhost>',
                                            'QUIT'])
        self.assertEqual(r[2], (503, '5.5.1 Error: need MAIL command'))

    def test_data_before_mail(self):
        r = smtp_session(self.server.port, ['HELO c.example.org', 'DATA', 'QUIT'])
        self.assertEqual(r[2][0], 503)
        self.assertTrue(r[2][1].startswith('5.5.1 '), r[2])

    def test_data_before_rcpt(self):
        # RFC 5321 3.3 allows 503 (bad sequence) or 554 (no valid recipients) here
        r = smtp_session(self.server.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                            'DATA', 'QUIT'])
        self.assertIn(r[3][0], (503, 554), r[3])
        self.assertTrue(r[3][1].startswith('5.5.1 '), r[3])
        self.assertEqual(r[4], (221, '2.0.0 Bye'))

    def test_nested_mail(self):
        r = smtp_session(self.server.port, ['HELO c.example.org', 'MAIL FROM:<a@example.org>',
                                            'MAIL FROM:<b@example.org>', 'QUIT'])
        self.assertEqual(r[3], (503, '5.5.1 Error: nested MAIL command'))

    def test_vrfy_never_reveals_users(self):
        r = smtp_session(self.server.port, ['HELO c.example.org', 'VRFY postmaster',
                                            'VRFY nobody', 'VRFY <postmaster@localhost>',
                                            'QUIT'])
        self.assertEqual(r[2][0], 252)
        self.assertEqual(r[2], r[3])
        self.assertEqual(r[2], r[4])

    def test_expn(self):
        r = smtp_session(self.server.port, ['HELO c.example.org', 'EXPN postmaster', 'QUIT'])
        self.assertEqual(r[2][0], 502)
        self.assertTrue(r[2][1].startswith('5.5.1 '), r[2])

    def test_noop_rset_help_quit(self):
        with Conn(self.server.port) as c:
            self.assertEqual(c.cmd('NOOP'), (250, '2.0.0 Ok'))
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            self.assertEqual(c.cmd('MAIL FROM:<a@example.org>'), (250, '2.1.0 Ok'))
            self.assertEqual(c.cmd('RSET'), (250, '2.0.0 Ok'))
            # RSET ended the transaction: MAIL is allowed again
            self.assertEqual(c.cmd('MAIL FROM:<a@example.org>'), (250, '2.1.0 Ok'))
            c.send('HELP\r\n')
            lines = c.raw_reply_lines()
            self.assertTrue(lines[-1].startswith('214 '), lines)
            self.assertTrue(all(l.startswith('214') for l in lines), lines)
            self.assertEqual(c.cmd('quit'), (221, '2.0.0 Bye'))
            self.assertTrue(c.closed(), 'connection still open after QUIT')

    def test_unknown_command(self):
        r = smtp_session(self.server.port, ['HELO c.example.org', 'FROBNICATE x', '', 'QUIT'])
        self.assertEqual(r[2], (500, '5.5.2 Error: command not recognized'))
        self.assertEqual(r[3][0], 500)
        self.assertTrue(r[3][1].startswith('5.5.2 '), r[3])

    def test_unimplemented_commands(self):
        r = smtp_session(self.server.port, ['EHLO c.example.org', 'BDAT 10 LAST', 'ETRN x',
                                            'AUTH PLAIN', 'QUIT'])
        for rep in r[2:4]:
            self.assertEqual(rep[0], 502, rep)
        self.assertEqual(r[4], (503, '5.5.1 Error: authentication not enabled'))

    def test_enhanced_status_codes_everywhere(self):
        lines = ['EHLO c.example.org', 'NOOP', 'RSET', 'HELP', 'VRFY x', 'EXPN x', 'FOO',
                 'MAIL FROM:<a@example.org> FOO=BAR', 'RCPT TO:<x@localhost>',
                 'MAIL FROM:<a@example.org>', 'MAIL FROM:<b@example.org>',
                 'RCPT TO:<victim@example.net>', 'RCPT TO:<nobody@localhost>',
                 'RCPT TO:<bad@>', 'RCPT TO:<postmaster@localhost> X=Y',
                 'RCPT TO:<postmaster@localhost>', 'DATA', 'Subject: t', '', 'x', '.',
                 'DATA', 'AUTH PLAIN', 'QUIT']
        replies = smtp_session(self.server.port, lines)
        self.assertEqual(len(replies), 1 + 21, replies)
        exempt = {0, 1}  # the greeting and the EHLO reply
        for i, rep in enumerate(replies):
            if i in exempt or rep[0] == 354:
                continue
            with self.subTest(i=i, reply=rep):
                self.assertTrue(has_enhanced_code(rep[1]), rep)

    def test_mail_parameters_need_ehlo(self):
        r = smtp_session(self.server.port, ['HELO c.example.org',
                                            'MAIL FROM:<a@example.org> SIZE=100',
                                            'MAIL FROM:<a@example.org> BODY=8BITMIME', 'QUIT'])
        self.assertEqual(r[2][0], 555)
        self.assertTrue(r[2][1].startswith('5.5.4 '), r[2])
        self.assertEqual(r[3][0], 555)

    def test_unknown_mail_parameter(self):
        r = smtp_session(self.server.port, ['EHLO c.example.org',
                                            'MAIL FROM:<a@example.org> FOO=BAR',
                                            'MAIL FROM:<a@example.org> BODY=7BIT SIZE=10',
                                            'RCPT TO:<postmaster@localhost> XYZZY=1',
                                            'QUIT'])
        self.assertEqual(r[2], (555, '5.5.4 Unsupported option: FOO=BAR'))
        self.assertEqual(r[3], (250, '2.1.0 Ok'))
        self.assertEqual(r[4][0], 555)

    def test_non_ascii_address(self):
        r = smtp_session(self.server.port, ['EHLO c.example.org',
                                            'MAIL FROM:<j\u00f6rg@example.org>'.encode('utf-8'),
                                            'QUIT'])
        self.assertEqual(r[2][0], 553)
        self.assertTrue(r[2][1].startswith('5.6.7 '), r[2])

    def test_line_too_long_and_session_continues(self):
        with Conn(self.server.port) as c:
            ok_line = b'NOOP ' + b'x' * 505 + b'\r\n'        # 512 octets: the limit
            self.assertEqual(len(ok_line), 512)
            self.assertEqual(c.cmd(ok_line), (250, '2.0.0 Ok'))
            long_line = b'NOOP ' + b'x' * 506 + b'\r\n'      # 513 octets
            self.assertEqual(len(long_line), 513)
            r = c.cmd(long_line)
            self.assertEqual(r[0], 500)
            self.assertTrue(r[1].startswith('5.5.2 Error: line too long'), r)
            self.assertEqual(c.cmd('NOOP'), (250, '2.0.0 Ok'))
            # a very long line in many pieces: still one reply
            c.send(b'MAIL FROM:<' + b'a' * 100000)
            time.sleep(0.05)
            r = c.cmd(b'a' * 100000 + b'@example.org>\r\n')
            self.assertEqual(r[0], 500)
            self.assertTrue(r[1].startswith('5.5.2 Error: line too long'), r)
            self.assertEqual(c.cmd('EHLO c.example.org')[0], 250)
            self.assertEqual(c.cmd('QUIT'), (221, '2.0.0 Bye'))

    def test_bare_lf_terminated_command(self):
        """A command ended by a bare LF gets an error reply, not silence."""
        with Conn(self.server.port, timeout=3) as c:
            c.send(b'NOOP\n')
            try:
                r = c.reply()
            except socket.timeout:
                self.fail('no reply within 3 s to b"NOOP\\n" (server waits for a CRLF)')
            self.assertIsNotNone(r)
            self.assertEqual(r[0], 500, r)
            self.assertTrue(r[1].startswith('5.5.2 '), r)
            self.assertIn('bare <LF>', r[1])

    def test_bare_lf_inside_command(self):
        with Conn(self.server.port) as c:
            # the bare LF ends (and fails) the first line; the second is a good NOOP
            r = c.cmd(b'NOOP\nNOOP\r\n')
            self.assertEqual(r, (500, '5.5.2 Error: bare <LF> received; lines must end '
                                      'with <CR><LF>'))
            self.assertEqual(c.reply(), (250, '2.0.0 Ok'))
            r = c.cmd(b'NOOP\rX\r\n')
            self.assertEqual(r[0], 500)
            self.assertIn('bare <CR>', r[1])
            self.assertEqual(c.cmd('NOOP'), (250, '2.0.0 Ok'))

    def test_http_request_is_refused(self):
        with Conn(self.server.port) as c:
            c.send(b'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')
            r = c.reply()
            self.assertIsNotNone(r)
            self.assertEqual(r[0], 421)
            self.assertTrue(r[1].startswith('4.7.0 '), r)
            self.assertTrue(c.closed(), 'connection not closed after 421')


class Transactions(ServerPerClass):
    def test_pipelining_two_transactions_in_one_write(self):
        s = self.server
        before = len(s.maildir('localhost', 'postmaster'))
        data = (b'EHLO c.example.org\r\n'
                b'MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n'
                b'Subject: one\r\n\r\nfirst\r\n.\r\n'
                b'MAIL FROM:<b@example.org>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n'
                b'Subject: two\r\n\r\nsecond\r\n.\r\n'
                b'QUIT\r\n')
        with Conn(s.port) as c:
            c.send(data)
            r = c.replies(10)
        self.assertEqual([x[0] if x else None for x in r],
                         [250, 250, 250, 354, 250, 250, 250, 354, 250, 221])
        self.assertRegex(r[4][1], QUEUED)
        self.assertRegex(r[8][1], QUEUED)
        self.assertNotEqual(r[4][1], r[8][1])
        files = s.wait_maildir('localhost', 'postmaster', before + 2)
        self.assertEqual(len(files), before + 2)
        bodies = [s.read_mail('localhost', 'postmaster', f) for f in files]
        self.assertTrue(any(b.endswith(b'Subject: one\n\nfirst\n') for b in bodies))
        self.assertTrue(any(b.endswith(b'Subject: two\n\nsecond\n') for b in bodies))

    def test_first_line_folded_cannot_extend_our_received(self):
        # a message whose first line begins with white space would read as a
        # continuation of the Received: field we put on top: an empty line
        # of ours ends the (empty) header before it
        s = self.server
        before = len(s.maildir('localhost', 'postmaster'))
        with Conn(s.port) as c:
            c.cmd('EHLO c.example.org')
            c.send(b'MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n')
            self.assertEqual([x[0] for x in c.replies(3)], [250, 250, 354])
            c.send(b' by trusted.example.org with ESMTPSA; (forged)\r\nSubject: x\r\n\r\nbody\r\n.\r\n')
            self.assertRegex(c.reply()[1], QUEUED)
        files = s.wait_maildir('localhost', 'postmaster', before + 1)
        self.assertEqual(len(files), before + 1)
        mail = max((s.read_mail('localhost', 'postmaster', f) for f in files),
                   key=lambda b: b' (forged)' in b)
        self.assertIn(b'\n\n by trusted.example.org with ESMTPSA; (forged)\nSubject: x\n\nbody\n',
                      mail)
        head = mail.split(b'\n\n', 1)[0]
        self.assertNotIn(b'forged', head)

    def test_half_close_still_gets_replies(self):
        s = self.server
        data = (b'EHLO c.example.org\r\n'
                b'MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n'
                b'Subject: half-close\r\n\r\nbye\r\n.\r\nQUIT\r\n')
        with Conn(s.port) as c:
            c.send(data)
            c.sock.shutdown(socket.SHUT_WR)
            r = c.replies(6)
        self.assertEqual([x[0] if x else None for x in r], [250, 250, 250, 354, 250, 221], r)
        self.assertRegex(r[4][1], QUEUED)
        qid = r[4][1].rsplit(' ', 1)[1]
        self.assertIsNotNone(s.wait_log(r'delivered queue=%s' % qid))

    def test_bare_lf_in_data_is_rejected(self):
        s = self.server
        mark = s.mark()
        before = len(s.maildir('localhost', 'postmaster'))
        with Conn(s.port) as c:
            c.cmd('EHLO c.example.org')
            c.cmd('MAIL FROM:<a@example.org>')
            self.assertEqual(c.cmd('RCPT TO:<postmaster@localhost>'), (250, '2.1.5 Ok'))
            self.assertEqual(c.cmd('DATA')[0], 354)
            r = c.cmd(b'Subject: bare\r\n\r\nline one\nline two\r\n.\r\n')
            self.assertEqual(r[0], 550)
            self.assertTrue(r[1].startswith('5.5.2 '), r)
            self.assertEqual(c.cmd('QUIT'), (221, '2.0.0 Bye'))
        time.sleep(0.2)
        self.assertEqual(self.queued_since(mark), [])
        self.assertEqual(len(s.maildir('localhost', 'postmaster')), before)

    SMUGGLE_ENDS = [
        ('LF.LF', b'\n.\n'),
        ('CRLF.LF', b'\r\n.\n'),
        ('LF.CRLF', b'\n.\r\n'),
        ('CR.CRLF', b'\r.\r\n'),
        ('CRLF.CR', b'\r\n.\r'),
    ]

    def test_smtp_smuggling(self):
        s = self.server
        for name, end in self.SMUGGLE_ENDS:
            with self.subTest(end=name):
                mark = s.mark()
                before = len(s.maildir('localhost', 'postmaster'))
                with Conn(s.port) as c:
                    c.cmd('EHLO c.example.org')
                    c.cmd('MAIL FROM:<a@example.org>')
                    c.cmd('RCPT TO:<postmaster@localhost>')
                    self.assertEqual(c.cmd('DATA')[0], 354)
                    c.send(b'Subject: outer\r\n\r\nhello' + end +
                           b'MAIL FROM:<evil@example.org>\r\n'
                           b'RCPT TO:<postmaster@localhost>\r\nDATA\r\n'
                           b'Subject: smuggled\r\n\r\nsmuggled')
                    c.sock.settimeout(0.5)
                    try:
                        early = c.reply()
                    except socket.timeout:
                        early = 'none'
                    self.assertEqual(early, 'none', 'the server answered before the real '
                                     'end of data: %r' % (early,))
                    c.sock.settimeout(5)
                    r = c.cmd(b'\r\n.\r\n')
                    self.assertEqual(r[0], 550, r)
                    self.assertTrue(r[1].startswith('5.5.2 '), r)
                    self.assertEqual(c.cmd('QUIT'), (221, '2.0.0 Bye'))
                time.sleep(0.1)
                log = s.log_since(mark)
                self.assertEqual(self.queued_since(mark), [], log)
                self.assertNotIn('evil@example.org', log)
                self.assertEqual(len(s.maildir('localhost', 'postmaster')), before)

    def test_dot_alone_after_bare_lf_text(self):
        """'.' on a line after text with a bare LF inside is the end, once."""
        with Conn(self.server.port) as c:
            c.cmd('HELO c.example.org')
            c.cmd('MAIL FROM:<a@example.org>')
            c.cmd('RCPT TO:<postmaster@localhost>')
            c.cmd('DATA')
            c.send(b'a\nb\r\n.\r\nNOOP\r\n')
            self.assertEqual(c.reply()[0], 550)
            self.assertEqual(c.reply(), (250, '2.0.0 Ok'))


class Limits(ServerPerClass):
    overrides = {'smtpd_recipient_limit': '3', 'message_size_limit': '2000'}

    def test_ehlo_shows_size_limit(self):
        with Conn(self.server.port) as c:
            c.send('EHLO c.example.org\r\n')
            lines = c.raw_reply_lines()
        self.assertIn('250-SIZE 2000', lines)

    def test_recipient_limit(self):
        r = smtp_session(self.server.port, [
            'EHLO app.example.org', 'MAIL FROM:<a@example.org>',
            'RCPT TO:<r1@example.net>', 'RCPT TO:<r2@example.net>', 'RCPT TO:<r3@example.net>',
            'RCPT TO:<r4@example.net>', 'RSET', 'QUIT'], source=TRUSTED)
        self.assertEqual([x[1] for x in r[3:6]], ['2.1.5 Ok'] * 3)
        self.assertEqual(r[6], (452, '4.5.3 Error: too many recipients'))

    def test_size_declared_too_big(self):
        r = smtp_session(self.server.port, ['EHLO c.example.org',
                                            'MAIL FROM:<a@example.org> SIZE=5000',
                                            'MAIL FROM:<a@example.org> SIZE=1000', 'QUIT'])
        self.assertEqual(r[2][0], 552)
        self.assertTrue(r[2][1].startswith('5.3.4 '), r[2])
        self.assertEqual(r[3], (250, '2.1.0 Ok'))

    def test_message_too_big(self):
        s = self.server
        mark = s.mark()
        body = b''.join(b'%04d %s\r\n' % (i, b'y' * 93) for i in range(30))  # 3000 octets
        self.assertEqual(len(body), 3000)
        with Conn(s.port) as c:
            c.cmd('EHLO c.example.org')
            self.assertEqual(c.cmd('MAIL FROM:<a@example.org>'), (250, '2.1.0 Ok'))
            self.assertEqual(c.cmd('RCPT TO:<postmaster@localhost>'), (250, '2.1.5 Ok'))
            self.assertEqual(c.cmd('DATA')[0], 354)
            c.send(body[:1500])
            c.sock.settimeout(0.3)
            try:
                early = c.reply()
            except socket.timeout:
                early = None
            self.assertIsNone(early, 'reply before the end of data: %r' % (early,))
            c.sock.settimeout(5)
            r = c.cmd(body[1500:] + b'.\r\n')
            self.assertEqual(r[0], 552, r)
            self.assertTrue(r[1].startswith('5.3.4 '), r)
            self.assertEqual(c.cmd('NOOP'), (250, '2.0.0 Ok'))
        time.sleep(0.2)
        self.assertEqual(self.queued_since(mark), [])
        self.assertEqual(s.queue_files('active'), [])
        self.assertEqual(s.maildir('localhost', 'postmaster'), [])


    def test_size_boundaries(self):
        """message_size_limit counts the message as sent, after dot-unstuffing."""
        s = self.server
        body = b''.join(b'%04d %s\r\n' % (i, b'y' * 93) for i in range(20))  # 2000 octets
        for extra, code in ((b'', 250), (b'z\r\n', 552), (b'..\r\n', 552)):
            with self.subTest(size=len(body) + len(extra)):
                with Conn(s.port) as c:
                    c.cmd('EHLO c.example.org')
                    self.assertEqual(c.cmd('MAIL FROM:<a@example.org> SIZE=2000'),
                                     (250, '2.1.0 Ok'))
                    self.assertEqual(c.cmd('RCPT TO:<postmaster@localhost>'), (250, '2.1.5 Ok'))
                    self.assertEqual(c.cmd('DATA')[0], 354)
                    r = c.cmd(body + extra + b'.\r\n')
                    self.assertEqual(r[0], code, r)
        r = smtp_session(s.port, ['EHLO c.example.org', 'MAIL FROM:<a@example.org> SIZE=2001',
                                  'MAIL FROM:<a@example.org> SIZE=abc', 'QUIT'])
        self.assertEqual(r[2][0], 552)
        self.assertEqual(r[3][0], 501)


class ErrorLimit(ServerPerClass):
    overrides = {'smtpd_hard_error_limit': '3'}

    def test_below_limit_continues(self):
        r = smtp_session(self.server.port, ['FOO', 'BAR', 'NOOP', 'QUIT'])
        self.assertEqual([x[0] for x in r[1:]], [500, 500, 250, 221])

    def test_limit_reached_disconnects(self):
        with Conn(self.server.port) as c:
            c.send(b'FOO\r\nBAR\r\nBAZ\r\n')
            r = c.replies(4)
            self.assertEqual([x[0] if x else None for x in r], [500, 500, 500, 421], r)
            self.assertTrue(r[3][1].startswith('4.7.0 '), r[3])
            self.assertIn('too many errors', r[3][1])
            self.assertTrue(c.closed(), 'still connected after 421')


class JunkCommands(ServerPerClass):
    overrides = {'smtpd_junk_command_limit': '3', 'smtpd_hard_error_limit': '2'}

    def test_noop_flood_ends_the_session(self):
        # three NOOPs are free; the fourth and fifth count as errors -> 421
        with Conn(self.server.port) as c:
            c.send(b'NOOP\r\n' * 5)
            r = c.replies(6)
            self.assertEqual([x[0] if x else None for x in r], [250] * 5 + [421], r)
            self.assertIn('too many errors', r[5][1])
            self.assertTrue(c.closed(), 'still connected after 421')


class IdleTimeout(ServerPerClass):
    overrides = {'smtpd_timeout': '2s'}

    def test_idle_timeout(self):
        s = self.server
        mark = s.mark()
        results = {}

        def idle(name, setup):
            try:
                with Conn(s.port, timeout=6) as c:
                    for line in setup:
                        c.cmd(line)
                    t0 = time.time()
                    r = c.reply()
                    results[name] = (r, time.time() - t0, c.closed())
            except Exception as e:  # reported below
                results[name] = e

        threads = [threading.Thread(target=idle, args=('command', ['EHLO c.example.org'])),
                   threading.Thread(target=idle, args=('data', [
                       'EHLO c.example.org', 'MAIL FROM:<a@example.org>',
                       'RCPT TO:<postmaster@localhost>', 'DATA']))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        for name in ('command', 'data'):
            with self.subTest(state=name):
                res = results.get(name)
                self.assertIsInstance(res, tuple, res)
                r, waited, closed = res
                self.assertIsNotNone(r, 'closed without a 421')
                self.assertEqual(r[0], 421, r)
                self.assertTrue(r[1].startswith('4.4.2 '), r)
                self.assertGreater(waited, 1.0)
                self.assertTrue(closed, 'connection not closed after the timeout')
        self.assertEqual(self.queued_since(mark), [])


class ConnectionLimit(ServerPerClass):
    overrides = {'smtpd_client_connection_count_limit': '2'}

    def test_connection_limit_per_client(self):
        port = self.server.port
        a = Conn(port, source=UNTRUSTED)
        b = Conn(port, source=UNTRUSTED)
        try:
            self.assertEqual(a.greeting[0], 220)
            self.assertEqual(b.greeting[0], 220)
            with Conn(port, source=UNTRUSTED) as c:
                self.assertEqual(c.greeting[0], 421, c.greeting)
                self.assertTrue(c.greeting[1].startswith('4.7.0 '), c.greeting)
                self.assertIn('too many connections', c.greeting[1])
                self.assertTrue(c.closed())
            with Conn(port, source=UNTRUSTED2) as d:
                self.assertEqual(d.greeting[0], 220)
                self.assertEqual(d.cmd('QUIT'), (221, '2.0.0 Bye'))
            # the first two still work
            self.assertEqual(a.cmd('NOOP'), (250, '2.0.0 Ok'))
            self.assertEqual(b.cmd('NOOP'), (250, '2.0.0 Ok'))
        finally:
            a.cmd('QUIT')
            a.close()
            b.close()
        # a freed slot can be used again
        deadline = time.time() + 3
        while True:
            with Conn(port, source=UNTRUSTED) as e, Conn(port, source=UNTRUSTED) as f:
                codes = (e.greeting[0], f.greeting[0])
            if codes == (220, 220) or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(codes, (220, 220))


if __name__ == '__main__':
    unittest.main()
