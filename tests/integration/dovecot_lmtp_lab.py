"""dovecot_lmtp_lab.py - a real Dovecot LMTP server on loopback, for delivery tests.

    with DovecotLMTP(users=['alice@example.test']) as dv:
        dv.socket_path     # the LMTP unix socket ("lmtp:unix:" + this)
        dv.inet            # 'inet:127.0.0.1:PORT', the same service over TCP
        dv.fetch('alice@example.test')   # [(mailbox, text)] through doveadm fetch
        dv.stop(); dv.start()

A sibling of dovecot_lab.Dovecot (same process control, same temporary
directory layout): protocols = lmtp, users from a passwd-file (a user not in
it does not exist: RCPT gets 550 5.1.1), mail stored as Maildirs under
DIR/mail/DOMAIN/USER, owned by the system user nobody (Dovecot refuses to
store mail as root). doveadm reads the mail back through the running
instance's userdb.
"""
import os
import pwd
import subprocess

import dovecot_lab

PACKAGE = 'dovecot-lmtpd'  # what provides the LMTP service, for harness.require()
LMTP_BINARY = '/usr/lib/dovecot/lmtp'
MAIL_USER = 'nobody'


def skip_reason():
    """None when the LMTP lab can run here, else why not."""
    why = dovecot_lab.skip_reason()
    if why is not None:
        return why
    if not os.path.exists(LMTP_BINARY):
        return '%s is missing (sh scripts/deps.sh test installs dovecot-lmtpd)' % LMTP_BINARY
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:
        return 'system user %s is missing' % MAIL_USER
    return None


class DovecotLMTP(dovecot_lab.Dovecot):
    """Dovecot's LMTP service with its own users and Maildirs; see the module comment."""

    def __init__(self, users=(), start=True):
        self.lmtp_users = list(users)
        super().__init__(users={}, start=False)
        self.socket_path = os.path.join(self.dir, 'lmtp')
        self.mail_root = os.path.join(self.dir, 'mail')
        self.users_path = os.path.join(self.dir, 'lmtp-users')
        pw = pwd.getpwnam(MAIL_USER)
        os.makedirs(self.mail_root)
        os.chown(self.mail_root, pw.pw_uid, pw.pw_gid)
        self._write_users(pw)
        self._write_lmtp_conf(pw)
        if start:
            self.start()

    def _write_users(self, pw):
        with open(self.users_path, 'w') as f:
            for user in self.lmtp_users:
                f.write('%s::%d:%d::%s::\n' % (user, pw.pw_uid, pw.pw_gid, self.home(user)))
        os.chmod(self.users_path, 0o644)

    def home(self, user):
        local, domain = user.rsplit('@', 1)
        return os.path.join(self.mail_root, domain, local)

    def _write_lmtp_conf(self, pw):
        conf = """\
# relayguard test lab: Dovecot's LMTP service, on loopback and a unix socket.
base_dir = {run}
state_dir = {dir}/state
instance_name = relayguard-lmtp-{port}
log_path = {log}
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
auth_username_format = %Lu
postmaster_address = postmaster@example.test
lmtp_save_to_detail_mailbox = no
passdb {{
  driver = passwd-file
  args = {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
service lmtp {{
  unix_listener {sock} {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""".format(run=self.run_dir, dir=self.dir, log=self.log_path, port=self.port,
           uid=pw.pw_uid, users=self.users_path, sock=self.socket_path)
        with open(self.conf_path, 'w') as f:
            f.write(conf)

    # -- reading the mail back -------------------------------------------
    def doveadm(self, *args, timeout=30):
        return subprocess.run(['doveadm', '-c', self.conf_path] + list(args),
                              capture_output=True, timeout=timeout)

    def fetch(self, user, mailbox='INBOX'):
        """Every message of USER's MAILBOX, as doveadm fetch prints its text."""
        out = self.doveadm('fetch', '-u', user, 'text', 'mailbox', mailbox, 'all')
        if out.returncode != 0:
            raise dovecot_lab.DovecotError('doveadm fetch -u %s failed (%s): %s\n%s'
                                           % (user, out.returncode,
                                              out.stderr.decode(errors='replace'), self.log()))
        text = out.stdout.decode('utf-8', 'replace')
        # messages are separated by a form feed line; each starts with "text:"
        return [m for m in text.split('\f\n') if m.strip()]

    def maildir_files(self, user):
        """File names in USER's Maildir new/ and cur/ as Dovecot wrote them."""
        found = []
        for sub in ('new', 'cur'):
            try:
                found += os.listdir(os.path.join(self.home(user), 'Maildir', sub))
            except FileNotFoundError:
                pass
        return sorted(found)
