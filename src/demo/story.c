/*
 * story.c - relayguard demo: the open-relay attack of
 * docs/open-relay-attack.md, played on loopback, then the fix.
 *
 * Owns: the lab's set-up (a dnsmasq zone, the victim's MX and the
 * misconfigured relay, all relayguard serve children of this binary), the
 * four steps, what each must show (rep_check), and the exit status.
 * Must not: reach anything but 127.0.0.0/8, use a name outside the reserved
 * .example domain, or leave a process behind (lab.c stops them by PID).
 */
#include "demo/demo.h"
#include "auth/passwd.h"
#include "demo/lab.h"
#include "demo/play.h"
#include "demo/report.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VICTIM_DIR "mx/mail/gmail.example/victim/new"
#define USER "alice@relay.example"
#define USER_PASS "demo-only-password"
#define WAIT_MS 15000

struct story {
	const struct demo_opts *o;
	struct lab lab;
	struct report rep;
	char dnsmasq[PATH_MAX];
	unsigned dns_port, relay_port, sub_port, mx_port;
	pid_t dns, relay, mx;
	size_t attack_mark; /* the relay's log before the first attack */
	struct timespec start;
};

/* elapsed - seconds since the story began. */
static double elapsed(const struct story *st)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - st->start.tv_sec) +
	       (double)(now.tv_nsec - st->start.tv_nsec) / 1e9;
}

/* find_dnsmasq - the DNS server of the lab, on PATH or in /usr/sbin. */
static bool find_dnsmasq(char *out, size_t len)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path && *path ? path : "/usr/bin:/bin"), *save = NULL;
	bool found = false;
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/dnsmasq", d);
		found = access(out, X_OK) == 0;
	}
	free(copy);
	if (!found) {
		snprintf(out, len, "/usr/sbin/dnsmasq");
		found = access(out, X_OK) == 0;
	}
	return found;
}

/* ---- showing what happened ---- */

/* untimed - a log line without its leading timestamp (the story has its own order). */
static const char *untimed(const char *line)
{
	const char *sp = strchr(line, ' ');
	bool stamp = line[0] >= '0' && line[0] <= '9' && sp && sp[-1] == 'Z';
	return stamp ? sp + 1 : line;
}

/* show_matching - the lines of text holding needle (any of them when NULL),
 * at most max, then how many more there were. */
static size_t show_matching(struct story *st, enum rep_kind k, const char *who,
			    const char *text, const char *const needles[], size_t max)
{
	size_t shown = 0, more = 0;
	for (const char *l = text; l && *l;) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);
		char *line = xstrndup(l, n);
		bool hit = needles == NULL;
		for (size_t i = 0; needles && needles[i] && !hit; i++)
			hit = strstr(line, needles[i]) != NULL;
		if (hit && shown < max)
			rep_add(&st->rep, k, who, "%s", k == REP_LOG ? untimed(line) : line), shown++;
		else if (hit)
			more++;
		free(line);
		l += n + (e ? 1 : 0);
	}
	if (more)
		rep_add(&st->rep, REP_SAY, NULL, "(%zu more such lines)", more);
	return shown + more;
}

/* show_log - a server's log since offset from: the lines holding needles. */
static size_t show_log(struct story *st, const char *who, const char *log, size_t from,
		       const char *const needles[], size_t max)
{
	char path[PATH_MAX + 64];
	char *text = lab_read(lab_path(&st->lab, log, path, sizeof(path)));
	size_t n = text && strlen(text) > from ? show_matching(st, REP_LOG, who, text + from,
								 needles, max) : 0;
	free(text);
	return n;
}

/* interesting_field - a header field the story tells (case-insensitive). */
static bool interesting_field(const char *line)
{
	static const char *const names[] = {"Received:", "Authentication-Results:",
					    "Return-Path:", "From:", "To:", "Subject:", NULL};
	for (size_t i = 0; names[i]; i++)
		if (rg_str_has_prefix_ci(line, names[i]))
			return true;
	return false;
}

/* show_header - the message's telling header fields, folded lines joined. */
static void show_header(struct story *st, const char *msg)
{
	struct strbuf field;
	strbuf_init(&field);
	for (const char *l = msg; *l && *l != '\r' && *l != '\n';) {
		const char *e = strchr(l, '\n');
		size_t n = e ? (size_t)(e - l) : strlen(l);
		size_t m = n && l[n - 1] == '\r' ? n - 1 : n;
		if (*l != ' ' && *l != '\t' && field.len) { /* a new field: tell the last */
			strbuf_append(&field, "", 0);
			if (interesting_field(field.data))
				rep_add(&st->rep, REP_HEADER, NULL, "%s", field.data);
			field.len = 0;
		}
		size_t ws = 0; /* a folded line joins the field with one space */
		while (field.len && ws < m && (l[ws] == ' ' || l[ws] == '\t'))
			ws++;
		if (ws)
			strbuf_append(&field, " ", 1);
		strbuf_append(&field, l + ws, m - ws);
		l += n + (e ? 1 : 0);
	}
	strbuf_append(&field, "", 0);
	if (field.len > 1 && interesting_field(field.data))
		rep_add(&st->rep, REP_HEADER, NULL, "%s", field.data);
	strbuf_free(&field);
}

/* ---- the lab ---- */

/* relay_config - the relay of relay.example: broken (everyone is "local") or fixed. */
static char *relay_config(const struct story *st, bool fixed)
{
	const char *d = st->lab.dir;
	return xasprintf(
		"# relayguard demo: the relay of relay.example (%s)\n"
		"myhostname = mail.relay.example\n"
		"mydestination = relay.example\n"
		"local_recipient_maps = inline:{postmaster, alice}\n"
		"smtpd_listen = " DEMO_RELAY_IP ":%u\n"
		"submission_listen = " DEMO_RELAY_IP ":%u\n"
		"submissions_listen =\n"
		"data_directory = %s/relay/data\n"
		"queue_directory = %s/relay/queue\n"
		"virtual_mailbox_base = %s/relay/mail\n"
		"dns_servers = " DEMO_DNS_IP ":%u\n"
		"smtp_tcp_port = %u\n"
		"smtp_bind_address = " DEMO_RELAY_IP "\n"
		"smtp_mta_sts = no\n"
		"smtpd_sasl_auth_enable = yes\n"
		"smtpd_sasl_path = %s/passwd\n"
		"smtpd_sasl_failure_delay = 0\n"
		"# the demo relay must start although it is open: the self-test only warns\n"
		"relay_selftest = warn\n%s",
		fixed ? "fixed" : "misconfigured", st->relay_port, st->sub_port, d, d, d, st->dns_port,
		st->mx_port, d,
		fixed ? "mynetworks = 127.0.0.1/32\n"
			"smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,"
			" reject_unauth_destination\n"
		      : "# the mistake: every client on the internet counts as local\n"
			"mynetworks = 0.0.0.0/0\n");
}

/* mx_config - the victim's mail server: final destination for gmail.example. */
static char *mx_config(const struct story *st)
{
	const char *d = st->lab.dir;
	return xasprintf("# relayguard demo: the MX of gmail.example (the victim's provider)\n"
			 "myhostname = mx.gmail.example\n"
			 "mydestination = gmail.example\n"
			 "local_recipient_maps = inline:{postmaster, victim}\n"
			 "smtpd_listen = " DEMO_MX_IP ":%u\n"
			 "submission_listen =\nsubmissions_listen =\n"
			 "data_directory = %s/mx/data\n"
			 "queue_directory = %s/mx/queue\n"
			 "virtual_mailbox_base = %s/mx/mail\n"
			 "mynetworks = 127.0.0.1/32\n"
			 "dns_servers = " DEMO_DNS_IP ":%u\n"
			 "# record DMARC instead of refusing (the default is to refuse p=reject with\n"
			 "# 550 5.7.1), so the demo can show the message and the MX's verdict on it\n"
			 "smtpd_dmarc_enforce = no\n"
			 "default_transport = error:5.7.1 the demo's victim MX sends nothing out\n",
			 st->mx_port, d, d, d, st->dns_port);
}

/* write_passwd - the relay's one user, hashed as relayguard passwd would. */
static bool write_passwd(struct story *st)
{
	char err[256];
	char *hash = passwd_hash("SHA512-CRYPT", USER_PASS, err, sizeof(err));
	if (hash == NULL)
		return false;
	char *line = xasprintf("%s:%s::::::\n", USER, hash);
	bool ok = lab_write(&st->lab, "passwd", line);
	free(line);
	free(hash);
	return ok;
}

/* start_dns - dnsmasq on 127.0.0.1 with the three domains' records. */
static bool start_dns(struct story *st)
{
	char *a[32];
	size_t n = 0;
	const char *dir = st->lab.dir;
	a[n++] = xstrdup(st->dnsmasq);
	a[n++] = xstrdup("--keep-in-foreground");
	a[n++] = xasprintf("--port=%u", st->dns_port);
	a[n++] = xstrdup("--listen-address=" DEMO_DNS_IP);
	a[n++] = xstrdup("--bind-interfaces");
	a[n++] = xstrdup("--no-resolv");
	a[n++] = xstrdup("--no-hosts");
	a[n++] = xasprintf("--pid-file=%s/dns.pid", dir);
	a[n++] = xasprintf("--log-facility=%s/dns.log", dir);
	a[n++] = xstrdup("--local-ttl=60");
	if (geteuid() == 0)
		a[n++] = xstrdup("--user=root"); /* else it would become nobody */
	a[n++] = xstrdup("--local=/example/");
	a[n++] = xstrdup("--local=/127.in-addr.arpa/");
	a[n++] = xstrdup("--txt-record=paypal.example,v=spf1 ip4:" DEMO_PAYPAL_IP " -all");
	a[n++] = xstrdup("--txt-record=_dmarc.paypal.example,v=DMARC1; p=reject");
	a[n++] = xstrdup("--mx-host=gmail.example,mx.gmail.example,10");
	a[n++] = xstrdup("--host-record=mx.gmail.example," DEMO_MX_IP);
	a[n++] = xstrdup("--mx-host=relay.example,mail.relay.example,10");
	a[n++] = xstrdup("--host-record=mail.relay.example," DEMO_RELAY_IP);
	a[n++] = xstrdup("--ptr-record=25.0.0.127.in-addr.arpa,mail.relay.example");
	a[n++] = xstrdup("--ptr-record=26.0.0.127.in-addr.arpa,mx.gmail.example");
	a[n] = NULL;
	size_t mark = lab_log_size(&st->lab, "dns.log");
	st->dns = lab_spawn(&st->lab, a, "dns.out");
	for (size_t i = 0; i < n; i++)
		free(a[i]);
	return st->dns > 0 && lab_wait_log(&st->lab, "dns.log", mark, "started", st->dns, WAIT_MS);
}

/* start_server - relayguard serve -c DIR/cf, logging to DIR/log; up once it listens. */
static pid_t start_server(struct story *st, const char *cf, const char *log)
{
	char path[PATH_MAX + 64];
	char *a[] = {st->lab.exe, "serve", "-c", (char *)lab_path(&st->lab, cf, path, sizeof(path)),
		     NULL};
	pid_t pid = lab_spawn(&st->lab, a, log);
	if (pid > 0 && lab_wait_log(&st->lab, log, 0, " listening address=", pid, WAIT_MS))
		return pid;
	if (lab_interrupted())
		return -1;
	rep_add(&st->rep, REP_SAY, NULL, "%s did not start; its log:", cf);
	show_log(st, cf, log, 0, NULL, 20);
	return -1;
}

/* write_cf - a config file from a string we own. */
static bool write_cf(struct story *st, const char *name, char *text)
{
	bool ok = lab_write(&st->lab, name, text);
	free(text);
	return ok;
}

/* pick_ports - a free port for each listener of the lab. */
static bool pick_ports(struct story *st)
{
	st->dns_port = lab_free_port(DEMO_DNS_IP, true);
	st->relay_port = lab_free_port(DEMO_RELAY_IP, false);
	st->sub_port = lab_free_port(DEMO_RELAY_IP, false);
	st->mx_port = lab_free_port(DEMO_MX_IP, false);
	return st->dns_port && st->relay_port && st->sub_port && st->mx_port &&
	       st->relay_port != st->sub_port;
}

/* set_up - the zone, the victim's MX, the open relay. */
static bool set_up(struct story *st)
{
	char path[PATH_MAX + 64];
	rep_step(&st->rep, 0, "the lab (loopback only)");
	mkdir(lab_path(&st->lab, "relay", path, sizeof(path)), 0755);
	mkdir(lab_path(&st->lab, "mx", path, sizeof(path)), 0755);
	if (!rep_check(&st->rep, pick_ports(st), "free ports on 127.0.0.1, .25 and .26") ||
	    !rep_check(&st->rep, write_passwd(st) && write_cf(st, "mx.cf", mx_config(st)) &&
					 write_cf(st, "relay.cf", relay_config(st, false)),
		       "configuration files written"))
		return false;
	rep_add(&st->rep, REP_SAY, NULL, "DNS zone on " DEMO_DNS_IP ":%u (dnsmasq):", st->dns_port);
	rep_add(&st->rep, REP_SAY, NULL, "  paypal.example        TXT \"v=spf1 ip4:" DEMO_PAYPAL_IP
		" -all\"   _dmarc: \"v=DMARC1; p=reject\"");
	rep_add(&st->rep, REP_SAY, NULL, "  gmail.example         MX mx.gmail.example = " DEMO_MX_IP);
	rep_add(&st->rep, REP_SAY, NULL, "  relay.example         MX mail.relay.example = "
		DEMO_RELAY_IP);
	if (!rep_check(&st->rep, start_dns(st), "dnsmasq answers"))
		return false;
	rep_add(&st->rep, REP_SAY, NULL, "victim's MX: relayguard serve on " DEMO_MX_IP
		":%u, final destination for gmail.example", st->mx_port);
	st->mx = start_server(st, "mx.cf", "mx.log");
	if (!rep_check(&st->rep, st->mx > 0, "the victim's MX is up"))
		return false;
	rep_add(&st->rep, REP_SAY, NULL, "the relay: relayguard serve on " DEMO_RELAY_IP
		":%u (submission :%u) with mynetworks = 0.0.0.0/0", st->relay_port, st->sub_port);
	rep_add(&st->rep, REP_SAY, NULL, "relay_selftest = warn in the demo relay's config: with "
		"the default (enforce) relayguard refuses to start an open relay");
	st->relay = start_server(st, "relay.cf", "relay.log");
	if (!rep_check(&st->rep, st->relay > 0, "the misconfigured relay is up"))
		return false;
	static const char *const risk[] = {"open-relay-risk", NULL};
	show_log(st, "relay", "relay.log", 0, risk, 2);
	return true;
}

/* ---- the steps ---- */

static const struct play_cmd attack_cmds[] = {
	{"HELO attacker.example", NULL},
	{"MAIL FROM:<ceo@paypal.example>", NULL},
	{"RCPT TO:<victim@gmail.example>", NULL},
	{"DATA", NULL},
};
enum { A_RCPT = 2 };

static const char attack_text[] =
	"From: \"PayPal CEO\" <ceo@paypal.example>\r\n"
	"To: <victim@gmail.example>\r\n"
	"Subject: Urgent: confirm your account\r\n"
	"\r\n"
	"This is a fake email, sent through an open relay.\r\n";

/* attack - the attacker's session from 127.0.0.66 (outside every sane mynetworks). */
static void attack(struct story *st, struct play_result *res)
{
	struct play_script s = {
		.who = "relay", .server_ip = DEMO_RELAY_IP, .port = st->relay_port,
		.source_ip = DEMO_ATTACKER_IP, .cmds = attack_cmds,
		.n = sizeof(attack_cmds) / sizeof(attack_cmds[0]), .message = attack_text,
	};
	play_run(&s, &st->rep, res);
}

/* count_mail - messages in the victim's Maildir new/. */
static size_t count_mail(struct story *st)
{
	char path[PATH_MAX + 64];
	DIR *d = opendir(lab_path(&st->lab, VICTIM_DIR, path, sizeof(path)));
	size_t n = 0;
	for (struct dirent *e; d && (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* find_mail - the text of the message in the victim's Maildir holding needle. */
static char *find_mail(struct story *st, const char *needle)
{
	char dir[PATH_MAX + 64], path[2 * PATH_MAX];
	DIR *d = opendir(lab_path(&st->lab, VICTIM_DIR, dir, sizeof(dir)));
	char *found = NULL;
	for (struct dirent *e; d && !found && (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		found = lab_read(path);
		if (found && strstr(found, needle) == NULL) {
			free(found);
			found = NULL;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* wait_mail - until the Maildir holds more than before messages. */
static bool wait_mail(struct story *st, size_t before)
{
	for (unsigned w = 0; w < WAIT_MS && !lab_interrupted(); w += 50) {
		if (count_mail(st) > before)
			return true;
		lab_sleep_ms(50);
	}
	return false;
}

/* step1 - the attacker's session, command by command. */
static void step1(struct story *st)
{
	rep_step(&st->rep, 1, "the attacker's session");
	rep_add(&st->rep, REP_SAY, NULL, "A stranger at " DEMO_ATTACKER_IP " asks the relay to "
		"carry mail from ceo@paypal.example to victim@gmail.example: neither address is "
		"the relay's.");
	struct play_result res;
	st->attack_mark = lab_log_size(&st->lab, "relay.log");
	attack(st, &res);
	rep_check(&st->rep, res.code[A_RCPT] == 250, "RCPT TO:<victim@gmail.example> accepted (250)");
	rep_check(&st->rep, res.data_code == 250, "the message was accepted (250): the relay "
		  "now owns it");
}

/* delivery_seen - the relay's log of the hop, then the message holding needle
 * in the victim's Maildir (which held before messages); its text, or NULL. */
static char *delivery_seen(struct story *st, size_t mark, size_t before, const char *needle)
{
	static const char *const hop[] = {"to=<victim@gmail.example>", NULL};
	bool sent = lab_wait_log(&st->lab, "relay.log", mark, "status=sent", st->relay, WAIT_MS);
	show_log(st, "relay", "relay.log", mark, hop, 6);
	rep_check(&st->rep, sent, "the relay looked up gmail.example's MX and delivered it there "
		  "(status=sent)");
	char *msg = wait_mail(st, before) ? find_mail(st, needle) : NULL;
	rep_check(&st->rep, msg != NULL, "the message is in victim@gmail.example's Maildir");
	return msg;
}

/* authres - what the MX's own checks said, when it makes them. */
static void authres(struct story *st, const char *msg)
{
	const char *end = strstr(msg, "\r\n\r\n") ? strstr(msg, "\r\n\r\n") : strstr(msg, "\n\n");
	const char *ar = strstr(msg, "Authentication-Results:");
	if (ar != NULL && (end == NULL || ar < end)) {
		rep_check(&st->rep, strstr(ar, "spf=fail") && strstr(ar, "dmarc=fail"),
			  "the MX's checks say spf=fail and dmarc=fail, but only after the relay "
			  "had sent the message under its own address");
		rep_add(&st->rep, REP_SAY, NULL, "(The demo's MX records DMARC: smtpd_dmarc_enforce = "
			"no. With the default it refuses this message with 550 5.7.1 at the end of "
			"DATA; the relay has sent it from its own address all the same, and gets the "
			"bounce and the blame.)");
		return;
	}
	rep_add(&st->rep, REP_SAY, NULL, "(No Authentication-Results: this build's MX does not "
		"check SPF/DMARC. They would say spf=fail, since paypal.example allows only "
		DEMO_PAYPAL_IP ", and dmarc=fail; and the recipient checks them only after the "
		"relay has sent the message under its own address.)");
}

/* step2 - the hop to the victim's MX and the message as the victim sees it. */
static void step2(struct story *st)
{
	rep_step(&st->rep, 2, "the relay forwards it; the victim receives it");
	char *msg = delivery_seen(st, st->attack_mark, 0, "ceo@paypal.example");
	if (msg != NULL) {
		rep_add(&st->rep, REP_SAY, NULL, "The message in the victim's Maildir (%s):",
			VICTIM_DIR);
		show_header(st, msg);
		rep_check(&st->rep, strstr(msg, "[" DEMO_RELAY_IP "]") != NULL,
			  "Received: names the relay (" DEMO_RELAY_IP "), not the attacker: the "
			  "relay takes the blame");
		authres(st, msg);
	}
	free(msg);
}

/* run_tool - this binary as a child (probe, audit): its verdict lines, its exit status. */
static int run_tool(struct story *st, char *const argv[], const char *const detail[],
		    const char *const verdict_lines[])
{
	struct strbuf cmd, out;
	strbuf_init(&cmd);
	strbuf_init(&out);
	strbuf_puts(&cmd, "$ relayguard");
	for (size_t i = 1; argv[i]; i++)
		strbuf_printf(&cmd, " %s", strstr(argv[i], st->lab.dir) ? strrchr(argv[i], '/') + 1
								    : argv[i]);
	rep_add(&st->rep, REP_SAY, NULL, "%s", cmd.data);
	int rc = lab_run(&st->lab, argv, &out, 60);
	strbuf_append(&out, "", 0);
	show_matching(st, REP_VERDICT, NULL, out.data, detail, 4);
	show_matching(st, REP_VERDICT, NULL, out.data, verdict_lines, 4);
	rep_add(&st->rep, REP_SAY, NULL, "(exit status %d)", rc);
	strbuf_free(&cmd);
	strbuf_free(&out);
	return rc;
}

/* probe_and_audit - both verdicts on the relay; true when both say want_open. */
static void probe_and_audit(struct story *st, bool want_open)
{
	static const char *const probe_detail[] = {"relay-accepted", NULL};
	static const char *const audit_detail[] = {"service ", "[open]", NULL};
	static const char *const verdict_lines[] = {"verdict:", NULL};
	char target[64], cf[PATH_MAX + 64];
	snprintf(target, sizeof(target), DEMO_RELAY_IP ":%u", st->relay_port);
	char *probe[] = {st->lab.exe, "probe", "--source", DEMO_ATTACKER_IP, "--domain",
			 "relay.example", "--timeout", "5", "--retry-after", "1", target, NULL};
	char *audit[] = {st->lab.exe, "audit", "-c",
			 (char *)lab_path(&st->lab, "relay.cf", cf, sizeof(cf)), NULL};
	int p = run_tool(st, probe, probe_detail, verdict_lines);
	rep_check(&st->rep, p == (want_open ? 1 : 0), want_open
		  ? "probe (over SMTP, no DATA sent): open, exit 1"
		  : "probe: closed, exit 0");
	int a = run_tool(st, audit, audit_detail, verdict_lines);
	rep_check(&st->rep, a == (want_open ? 1 : 0), want_open
		  ? "audit (offline, from relay.cf): open, exit 1"
		  : "audit: closed, exit 0");
}

/* step3 - what relayguard's own tools say about the relay. */
static void step3(struct story *st)
{
	rep_step(&st->rep, 3, "probe and audit the relay");
	rep_add(&st->rep, REP_SAY, NULL, "relayguard probe tries every address trick of its "
		"battery from " DEMO_ATTACKER_IP "; relayguard audit reads relay.cf and decides "
		"offline.");
	probe_and_audit(st, true);
}

static const char user_text[] =
	"From: Alice <" USER ">\r\n"
	"To: <victim@gmail.example>\r\n"
	"Subject: Lunch on Friday?\r\n"
	"\r\n"
	"Sent after logging in: this is what a relay is for.\r\n";

/* legitimate - alice submits through the relay's submission port, with AUTH. */
static void legitimate(struct story *st)
{
	static const char id[] = "\0" USER "\0" USER_PASS;
	char b64[128], auth[160];
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)id, (int)sizeof(id) - 1);
	snprintf(auth, sizeof(auth), "AUTH PLAIN %s", b64);
	const struct play_cmd cmds[] = {
		{"EHLO laptop.relay.example", NULL}, {"STARTTLS", NULL},
		{"EHLO laptop.relay.example", NULL},
		{auth, "AUTH PLAIN (" USER " and password, base64)"},
		{"MAIL FROM:<" USER ">", NULL}, {"RCPT TO:<victim@gmail.example>", NULL},
		{"DATA", NULL},
	};
	struct play_script s = {
		.who = "relay", .server_ip = DEMO_RELAY_IP, .port = st->sub_port,
		.source_ip = DEMO_USER_IP, .cmds = cmds, .n = sizeof(cmds) / sizeof(cmds[0]),
		.message = user_text,
	};
	struct play_result res;
	size_t mark = lab_log_size(&st->lab, "relay.log"), before = count_mail(st);
	rep_add(&st->rep, REP_SAY, NULL, "The legitimate path: " USER " (at " DEMO_USER_IP
		", outside mynetworks) logs in on the submission port.");
	play_run(&s, &st->rep, &res);
	rep_check(&st->rep, res.data_code == 250, "the authenticated submission was accepted (250)");
	free(delivery_seen(st, mark, before, USER));
}

/* reload_fixed - write the fix, SIGHUP, wait for the relay to say it took it. */
static void reload_fixed(struct story *st)
{
	static const char *const reload[] = {"reload", NULL};
	rep_add(&st->rep, REP_SAY, NULL, "relay.cf, fixed:");
	rep_add(&st->rep, REP_HEADER, NULL, "mynetworks = 127.0.0.1/32");
	rep_add(&st->rep, REP_HEADER, NULL, "smtpd_relay_restrictions = permit_mynetworks, "
		"permit_sasl_authenticated, reject_unauth_destination");
	size_t mark = lab_log_size(&st->lab, "relay.log");
	bool ok = write_cf(st, "relay.cf", relay_config(st, true)) && kill(st->relay, SIGHUP) == 0;
	rep_add(&st->rep, REP_SAY, NULL, "$ kill -HUP %ld   (the relay's PID)", (long)st->relay);
	ok = ok && lab_wait_log(&st->lab, "relay.log", mark, "reloaded config=", st->relay, WAIT_MS);
	show_log(st, "relay", "relay.log", mark, reload, 4);
	rep_check(&st->rep, ok, "the relay reloaded relay.cf (no restart)");
}

/* step4 - the fix: the attack again, probe and audit again, the legitimate path. */
static void step4(struct story *st)
{
	rep_step(&st->rep, 4, "the fix, reloaded; the attack again");
	reload_fixed(st);
	struct play_result res;
	size_t before = count_mail(st);
	attack(st, &res);
	char *what = xasprintf("the attack is refused at RCPT: %s", res.reply[A_RCPT]);
	rep_check(&st->rep, res.code[A_RCPT] / 100 == 5 && res.data_code == 0, what);
	free(what);
	probe_and_audit(st, false);
	legitimate(st);
	rep_check(&st->rep, count_mail(st) == before + 1,
		  "the victim's Maildir gained alice's message, and nothing from the attacker");
}

/* ---- the whole story ---- */

/* pause - with --step on a terminal: wait for Enter before step n. */
static void pause_before(const struct story *st, int n)
{
	if (!st->o->step || !isatty(0) || lab_interrupted())
		return;
	printf("\n(press Enter for step %d) ", n);
	fflush(stdout);
	lab_wait_enter();
}

/* write_html - the page, when --html was given. */
static bool write_html(struct story *st)
{
	if (st->o->html_file == NULL)
		return true;
	char *page = rep_html(&st->rep);
	FILE *f = fopen(st->o->html_file, "w");
	bool ok = f != NULL && fputs(page, f) >= 0;
	ok = (f == NULL || fclose(f) == 0) && ok;
	free(page);
	if (ok)
		printf("demo: the story as a web page: %s\n", st->o->html_file);
	else
		fprintf(stderr, "relayguard demo: cannot write %s: %s\n", st->o->html_file,
			strerror(errno));
	return ok;
}

/* verdict - the last line, and the exit status. */
static int verdict(struct story *st, bool html_ok)
{
	if (lab_interrupted()) {
		printf("demo: interrupted (signal %d); everything it started has been stopped\n",
		       lab_interrupted());
		return DEMO_EXIT_INTERRUPTED;
	}
	if (st->rep.failed == 0 && html_ok) {
		printf("demo: every step had the expected outcome (%.1f s)\n", elapsed(st));
		return DEMO_EXIT_OK;
	}
	printf("demo: FAILED:");
	for (int n = 0; n <= 4; n++)
		if (st->rep.failed_steps & (1u << n))
			printf(n ? " step %d" : " set-up", n);
	printf("%s did not have the expected outcome (see [FAILED] above)\n",
	       html_ok ? "" : " (and the HTML page could not be written)");
	return DEMO_EXIT_FAILED;
}

int demo_run(const struct demo_opts *o)
{
	struct story st = {.o = o};
	char err[512];
	clock_gettime(CLOCK_MONOTONIC, &st.start);
	if (!find_dnsmasq(st.dnsmasq, sizeof(st.dnsmasq))) {
		fprintf(stderr, "relayguard demo: needs dnsmasq, the lab's DNS server: install the "
			"Debian package dnsmasq-base (apt-get install dnsmasq-base)\n");
		return DEMO_EXIT_UNAVAILABLE;
	}
	if (!lab_open(&st.lab, o->keep_dir, err, sizeof(err))) {
		fprintf(stderr, "relayguard demo: %s\n", err);
		return DEMO_EXIT_FAILED;
	}
	rep_init(&st.rep);
	printf("relayguard demo: an open relay abused, found and fixed, on loopback (%s)\n",
	       st.lab.dir);
	bool up = set_up(&st);
	void (*const steps[])(struct story *) = {step1, step2, step3, step4};
	for (int n = 1; up && n <= 4 && !lab_interrupted(); n++) {
		pause_before(&st, n);
		if (!lab_interrupted())
			steps[n - 1](&st);
	}
	lab_close(&st.lab);
	if (o->keep_dir != NULL)
		printf("demo: the lab (configurations, logs, Maildirs) is kept in %s\n", st.lab.dir);
	int rc = verdict(&st, write_html(&st));
	rep_free(&st.rep);
	return rc;
}
