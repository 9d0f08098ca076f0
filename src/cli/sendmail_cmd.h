/*
 * sendmail_cmd - `relayguard sendmail` and the `sendmail` link: the command
 * cron, PHP's mail() and scripts use to send a message read on stdin.
 *
 * Owns: sendmail's options (-t -i -oi -f -F -C, a few ignored for
 * compatibility), reading the message (bounded by message_size_limit),
 * -t's recipients (To/Cc/Bcc), removing Bcc:, adding From:/Date:/Message-ID:
 * when missing, and one blocking SMTP dialogue with the running server over
 * <queue_directory>/pickup (a server that is down is waited for, up to 30 s,
 * with the message already read), whose replies become sysexits.h exit codes
 * (EX_TEMPFAIL 75 when the server stays down or answers 4xx, EX_NOUSER 67 for
 * a refused recipient, EX_NOPERM 77 for a sender the user may not use...)
 * with one line on stderr. All or nothing: a refused recipient sends nothing.
 * Must not: write the queue itself; the server decides who may send as whom
 * (it knows the user from the kernel, not from us).
 */
#ifndef RG_SENDMAIL_CMD_H
#define RG_SENDMAIL_CMD_H

/* argv: the options and recipients after "sendmail"; returns an EX_* code. */
int sendmail_main(int argc, char **argv);

#endif
