/*
 * sendmail_cmd.c - relayguard sendmail (see sendmail_cmd.h).
 *
 * SYNOPSIS
 *	relayguard sendmail [-t] [-i] [-oi] [-f sender] [-F name] [-C file] [recipient...]
 *	relayguard sendmail -bp | -bi [-C file]
 *	sendmail ... | mailq | newaliases   (the same, through links of those names)
 */
#include "cli/sendmail_cmd.h"
#include "cli/cli.h"
#include "cli/queue_cmd.h"
#include "config/config.h"
#include "smtp/pickup.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define ADDR_MAX 320          /* an address we pass on (the server checks it again) */
#define REPLY_MAX 1024        /* one server reply line we keep */
#define SMTP_TIMEOUT 300      /* seconds per reply, as RFC 5321 4.5.3.2 suggests */
/* A server that is not there is waited for, so that a restart (stop: the
 * sessions in progress finish; start: load, self-test, bind; a few seconds)
 * does not lose cron's mail: cron discards a job's output when sendmail
 * fails, and there is no maildrop directory to leave it in. 30 s covers a
 * restart many times over yet stays short enough that a caller blocked on
 * us (a web request in PHP's mail()) fails rather than hangs; a server down
 * for longer is a failure the caller's own retry decides (EX_TEMPFAIL). */
#define PICKUP_WAIT_SECONDS 30
#define PICKUP_RETRY_MS 250

static const char usage_sendmail[] =
	"usage: relayguard sendmail [-t] [-i] [-oi] [-f sender] [-F name] [-C file] [recipient...]\n"
	"       relayguard sendmail -bp | -bi [-C file]\n"
	"       sendmail ... | mailq | newaliases   (the same, through links so named)\n"
	"\n"
	"Send the message on standard input through the running server (its\n"
	"<queue_directory>/pickup socket), as the Unix user running this command.\n"
	"A server that is not running is waited for, up to 30 seconds (a restart).\n"
	"\n"
	"Options:\n"
	"  -t          recipients also from To:, Cc: and Bcc: (Bcc: is removed)\n"
	"  -i, -oi     a line with a single dot does not end the message\n"
	"  -f sender   envelope sender (default: user@myorigin); the server refuses\n"
	"              one the user does not own (smtpd_sender_login_maps)\n"
	"  -F name     full name for the From: header that is added when missing\n"
	"  -C file     configuration (default: as 'relayguard config')\n"
	"  -bp         list the queue as 'relayguard queue list' does (link: mailq)\n"
	"  -bi         nothing to build: alias files are read directly (link: newaliases)\n"
	"  -h, --help  this text\n"
	"Ignored for compatibility: -oX, -v, -bm, -B/-N/-R/-V with their argument.\n"
	"Exit status (sysexits.h): 0 sent, 64 usage, 65 bad message, 67 recipient\n"
	"refused, 69 refused, 75 try again later (server down 30 s, or 4xx), 77 sender\n"
	"not allowed, 78 configuration error.\n";

/* -bp (mailq) and -bi (newaliases) are not about sending. */
enum sm_mode { SM_SEND, SM_MAILQ, SM_NEWALIASES };

struct sm_opts {
	enum sm_mode mode;
	bool extract, ignore_dots;
	const char *sender, *fullname, *config;
	char **rcpts; /* command-line recipients */
	int n_rcpts;
};

struct rcpt_list {
	char **v;
	size_t n;
};

static void rcpt_add(struct rcpt_list *l, const char *addr)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], addr) == 0)
			return;
	l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
	l->v[l->n++] = xstrdup(addr);
}

static void rcpt_free(struct rcpt_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* fail - the one line on stderr, and the exit code. */
static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("sendmail: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return code;
}

/* opt_value - "-fX" or "-f X"; NULL when the value is missing. */
static const char *opt_value(int argc, char **argv, int *i)
{
	if (argv[*i][2] != '\0')
		return argv[*i] + 2;
	return *i + 1 < argc ? argv[++*i] : NULL;
}

/* parse_one - one option; 1 ok, 0 help, -1 usage error. */
static int parse_one(int argc, char **argv, int *i, struct sm_opts *o)
{
	const char *a = argv[*i];
	if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
		return 0;
	if (strcmp(a, "-t") == 0)
		o->extract = true;
	else if (strcmp(a, "-bp") == 0)
		o->mode = SM_MAILQ;
	else if (strcmp(a, "-bi") == 0)
		o->mode = SM_NEWALIASES;
	else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
		o->ignore_dots = true;
	else if (strcmp(a, "-v") == 0 || strcmp(a, "-bm") == 0 || strncmp(a, "-o", 2) == 0)
		; /* compatibility: nothing to do */
	else if (a[1] == 'f' || a[1] == 'r')
		return (o->sender = opt_value(argc, argv, i)) ? 1 : -1;
	else if (a[1] == 'F')
		return (o->fullname = opt_value(argc, argv, i)) ? 1 : -1;
	else if (a[1] == 'C')
		return (o->config = opt_value(argc, argv, i)) ? 1 : -1;
	else if (strchr("BNRV", a[1]) != NULL && a[1] != '\0')
		return opt_value(argc, argv, i) ? 1 : -1;
	else
		return -1;
	return 1;
}

/* parse_options - 1 ok, 0 help printed, -1 usage error printed. */
static int parse_options(int argc, char **argv, struct sm_opts *o)
{
	int i = 0;
	for (; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		int rc = parse_one(argc, argv, &i, o);
		if (rc == 0) {
			fputs(usage_sendmail, stdout);
			return 0;
		}
		if (rc < 0) {
			fprintf(stderr, "sendmail: unknown or incomplete option \"%s\" (-bs "
				"and the daemon modes are not supported)\n", argv[i]);
			fputs(usage_sendmail, stderr);
			return -1;
		}
	}
	o->rcpts = argv + i;
	o->n_rcpts = argc - i;
	return 1;
}

/* read_chunk - fgets that returns the length: a NUL byte is seen, not taken
 * for the end of the line (which would glue the next line onto this one). */
static size_t read_chunk(FILE *in, char *buf, size_t size)
{
	size_t n = 0;
	int c;
	while (n + 1 < size && (c = getc(in)) != EOF) {
		buf[n++] = (char)c;
		if (c == '\n')
			break;
	}
	buf[n] = '\0';
	return n;
}

/* read_message - stdin as CRLF lines, bounded; without -i a lone "." ends it. */
static int read_message(FILE *in, bool dot_ends, uint64_t limit, struct strbuf *out)
{
	char chunk[8192];
	bool bol = true;
	size_t n;
	while ((n = read_chunk(in, chunk, sizeof(chunk))) > 0) {
		if (memchr(chunk, '\0', n) != NULL)
			return fail(EX_DATAERR, "the message contains a NUL byte; not sent");
		bool eol = chunk[n - 1] == '\n';
		if (bol && dot_ends && (strcmp(chunk, ".\n") == 0 || strcmp(chunk, ".\r\n") == 0 ||
					strcmp(chunk, ".") == 0))
			break;
		if (eol)
			n -= (n >= 2 && chunk[n - 2] == '\r') ? 2 : 1;
		strbuf_append(out, chunk, n);
		if (eol)
			strbuf_puts(out, "\r\n");
		if (out->len > limit) {
			char n_text[24];
			snprintf(n_text, sizeof(n_text), "%llu", (unsigned long long)limit);
			return fail(EX_DATAERR, "message larger than message_size_limit (%s bytes); "
				    "not sent", n_text);
		}
		bol = eol;
	}
	if (ferror(in))
		return fail(EX_IOERR, "cannot read the message: %s", strerror(errno));
	if (!bol)
		strbuf_puts(out, "\r\n");
	return EX_OK;
}

/* header_end - offset of the body (after the empty line), or where the header
 * block stops being header fields; *has_blank says an empty line is there. */
static size_t header_end(const char *m, size_t len, bool *has_blank)
{
	size_t off = 0;
	*has_blank = false;
	while (off < len) {
		const char *eol = strstr(m + off, "\r\n");
		size_t n = (size_t)(eol - (m + off));
		if (n == 0) {
			*has_blank = true;
			return off;
		}
		bool cont = m[off] == ' ' || m[off] == '\t';
		const char *colon = memchr(m + off, ':', n);
		if (!cont && (colon == NULL || strcspn(m + off, " \t:") != (size_t)(colon - (m + off))))
			return off; /* not a field: the body starts here */
		if (cont && off == 0)
			return off;
		off += n + 2;
	}
	return off;
}

/* field_len - the bytes of the field starting at OFF, continuations included. */
static size_t field_len(const char *m, size_t off, size_t end)
{
	size_t p = off;
	do {
		p = (size_t)(strstr(m + p, "\r\n") - m) + 2;
	} while (p < end && (m[p] == ' ' || m[p] == '\t'));
	return p - off;
}

static bool is_field(const char *f, const char *name)
{
	size_t n = strlen(name);
	return rg_strncasecmp(f, name, n) == 0 && (f[n] == ':' || f[n] == ' ' || f[n] == '\t');
}

/* qualify - ADDR as a bare address: no <>, @myorigin added to a local name. */
static bool qualify(const char *addr, const char *origin, char *out, size_t outlen)
{
	size_t n = strlen(addr);
	if (n >= 2 && addr[0] == '<' && addr[n - 1] == '>')
		addr++, n -= 2;
	if (n == 0 || n >= ADDR_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)addr[i] <= ' ' || strchr("<>()", addr[i]) != NULL)
			return false;
	bool local = memchr(addr, '@', n) == NULL;
	return (size_t)snprintf(out, outlen, "%.*s%s%s", (int)n, addr, local ? "@" : "",
				local ? origin : "") < outlen;
}

/* take_item - one item of an address list: the <...> part or the bare text. */
static void take_item(const char *item, size_t n, const char *origin, struct rcpt_list *l)
{
	char buf[ADDR_MAX + 2], addr[ADDR_MAX + 256];
	size_t k = 0;
	const char *lt = memchr(item, '<', n), *gt = lt ? memchr(lt, '>', n - (size_t)(lt - item)) : NULL;
	if (lt && gt) {
		item = lt + 1;
		n = (size_t)(gt - item);
		const char *route = memchr(item, ':', n); /* <@a,@b:user@c> */
		if (route) {
			n -= (size_t)(route + 1 - item);
			item = route + 1;
		}
	}
	for (size_t i = 0; i < n && k + 1 < sizeof(buf); i++)
		if (item[i] != ' ' && item[i] != '\t')
			buf[k++] = item[i];
	buf[k] = '\0';
	if (k > 0 && qualify(buf, origin, addr, sizeof(addr)))
		rcpt_add(l, addr);
}

/* add_address_list - RFC 5322 address-list: commas outside quotes, comments
 * and <...>; group names ("list:") and ";" dropped; comments removed. */
static void add_address_list(const char *v, size_t len, const char *origin, struct rcpt_list *l)
{
	char item[1024];
	size_t k = 0;
	int paren = 0;
	bool quote = false, angle = false;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? v[i] : ',';
		if (quote && c == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (c == '"' && !paren)
			quote = !quote;
		else if (!quote && c == '(')
			paren++;
		else if (!quote && c == ')' && paren > 0)
			paren--;
		else if (!quote && !paren && (c == '<' || c == '>'))
			angle = c == '<';
		if (quote || paren || c == '(' || c == ')' || c == '"')
			continue; /* display names and comments are not addresses */
		if (!angle && (c == ',' || c == ';' || c == ':')) {
			if (c != ':')
				take_item(item, k, origin, l);
			k = 0;
			continue;
		}
		if (k + 1 < sizeof(item) && c != '\r' && c != '\n')
			item[k++] = c;
	}
}

/* headers_scan - -t's recipients from To/Cc/Bcc; notes which fields exist. */
struct present {
	bool from, date, message_id;
};

static void headers_scan(const struct strbuf *m, size_t end, const struct sm_opts *o,
			 const char *origin, struct rcpt_list *l, struct present *p)
{
	for (size_t off = 0; off < end;) {
		size_t n = field_len(m->data, off, end);
		const char *f = m->data + off;
		p->from |= is_field(f, "From");
		p->date |= is_field(f, "Date");
		p->message_id |= is_field(f, "Message-ID");
		if (o->extract && (is_field(f, "To") || is_field(f, "Cc") || is_field(f, "Bcc"))) {
			const char *colon = memchr(f, ':', n);
			add_address_list(colon + 1, n - (size_t)(colon + 1 - f), origin, l);
		}
		off += n;
	}
}

/* clean_phrase - a full name for From:, quoted; controls and quotes dropped. */
static void clean_phrase(const char *in, char *out, size_t outlen)
{
	size_t k = 0;
	for (; *in && k + 1 < outlen; in++)
		if ((unsigned char)*in >= ' ' && *in != '"' && *in != '\\' && *in != 0x7f)
			out[k++] = *in;
	out[k] = '\0';
}

/* add_missing - From:, Date: and Message-ID: when the message has none. */
static void add_missing(struct strbuf *out, const struct present *p, const char *from,
			const char *name, const char *host)
{
	if (!p->from && name[0] != '\0')
		strbuf_printf(out, "From: \"%s\" <%s>\r\n", name, from);
	else if (!p->from)
		strbuf_printf(out, "From: %s\r\n", from);
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	if (!p->date) {
		char date[64];
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
		strbuf_printf(out, "Date: %s\r\n", date);
	}
	if (!p->message_id) {
		unsigned char r[8] = {0};
		char stamp[32];
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r[0] = (unsigned char)now; /* uniqueness also from time and pid */
		strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm);
		strbuf_printf(out, "Message-ID: <%s.%ld.%02x%02x%02x%02x%02x%02x%02x%02x@%s>\r\n",
			      stamp, (long)getpid(), r[0], r[1], r[2], r[3], r[4], r[5], r[6],
			      r[7], host);
	}
}

/* The message as it will be sent, and who it goes to. */
struct outgoing {
	char sender[ADDR_MAX + 256]; /* "" for the null sender */
	struct rcpt_list rcpts;
	struct strbuf text;          /* CRLF lines, not dot-stuffed */
};

/* user_identity - who runs us: the login name and the GECOS full name. */
static void user_identity(char *login, size_t llen, char *gecos, size_t glen)
{
	struct passwd *pw = getpwuid(getuid());
	snprintf(login, llen, "uid%lu", (unsigned long)getuid());
	gecos[0] = '\0';
	if (pw == NULL)
		return;
	if (pw->pw_name[0] != '\0' && strlen(pw->pw_name) < llen)
		rg_strlcpy(login, pw->pw_name, llen);
	if (pw->pw_gecos != NULL) {
		char name[256];
		rg_strlcpy(name, pw->pw_gecos, sizeof(name));
		name[strcspn(name, ",")] = '\0';
		clean_phrase(name, gecos, glen);
	}
}

/* envelope_sender - -f (qualified; "" or "<>" is the null sender) or user@myorigin. */
static int envelope_sender(const struct sm_opts *o, const struct config *cfg,
			   const char *login, struct outgoing *m)
{
	if (o->sender == NULL) {
		snprintf(m->sender, sizeof(m->sender), "%s@%s", login, cfg->myorigin);
		return EX_OK;
	}
	if (strcmp(o->sender, "") == 0 || strcmp(o->sender, "<>") == 0) {
		m->sender[0] = '\0';
		return EX_OK;
	}
	if (!qualify(o->sender, cfg->myorigin, m->sender, sizeof(m->sender)))
		return fail(EX_USAGE, "bad sender address \"%s\"", o->sender);
	return EX_OK;
}

/* compose - headers fixed up (Bcc: removed, missing ones added), recipients found. */
static int compose(const struct sm_opts *o, const struct config *cfg, const struct strbuf *in,
		   struct outgoing *m)
{
	char login[PICKUP_LOGIN_MAX], gecos[200], name[200], own[ADDR_MAX + 256];
	user_identity(login, sizeof(login), gecos, sizeof(gecos));
	int rc = envelope_sender(o, cfg, login, m);
	if (rc != EX_OK)
		return rc;
	bool blank;
	size_t end = header_end(in->data, in->len, &blank);
	struct present p = {0};
	headers_scan(in, end, o, cfg->myorigin, &m->rcpts, &p);
	for (int i = 0; i < o->n_rcpts; i++)
		add_address_list(o->rcpts[i], strlen(o->rcpts[i]), cfg->myorigin, &m->rcpts);
	if (m->rcpts.n == 0)
		return fail(EX_USAGE, "no recipients: name them as arguments or use -t");
	for (size_t off = 0; off < end;) { /* every field but Bcc: */
		size_t n = field_len(in->data, off, end);
		if (!is_field(in->data + off, "Bcc"))
			strbuf_append(&m->text, in->data + off, n);
		off += n;
	}
	snprintf(own, sizeof(own), "%s@%s", login, cfg->myorigin);
	clean_phrase(o->fullname ? o->fullname : gecos, name, sizeof(name));
	add_missing(&m->text, &p, m->sender[0] ? m->sender : own, name, cfg->myhostname);
	strbuf_puts(&m->text, "\r\n");
	size_t body = blank ? end + 2 : end;
	if (body < in->len)
		strbuf_append(&m->text, in->data + body, in->len - body);
	return EX_OK;
}

/* The connection to the server. */
struct conn {
	int fd;
	char buf[4096];
	size_t have, used;
	char reply[REPLY_MAX]; /* the last reply's first line, for messages */
};

/* server_absent - the errors of a server that is not there (yet): no socket
 * file (stopped, or starting), or nobody listening on it (stopping). */
static bool server_absent(int e)
{
	return e == ENOENT || e == ECONNREFUSED;
}

/* connect_waiting - connect, and while the server is absent try again every
 * PICKUP_RETRY_MS for PICKUP_WAIT_SECONDS (a restart); 0 or the last errno. */
static int connect_waiting(const struct sockaddr_un *sun, struct conn *c)
{
	struct timespec start, now, pause = {0, PICKUP_RETRY_MS * 1000000L};
	clock_gettime(CLOCK_MONOTONIC, &start);
	bool told = false;
	for (;;) {
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0)
			return errno;
		if (connect(c->fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0)
			return 0;
		int e = errno;
		close(c->fd);
		c->fd = -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!server_absent(e) || now.tv_sec - start.tv_sec >= PICKUP_WAIT_SECONDS)
			return e;
		if (!told && isatty(STDERR_FILENO)) /* a person waits: say why */
			fprintf(stderr, "sendmail: the mail server is not running; waiting up to "
				"%d seconds for it\n", PICKUP_WAIT_SECONDS);
		told = true;
		nanosleep(&pause, NULL);
	}
}

/* connect_pickup - <queue_directory>/pickup; through /proc when the path is long. */
static int connect_pickup(const struct config *cfg, struct conn *c)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", cfg->queue_directory, PICKUP_SOCKET_NAME);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int dirfd = -1;
	if (strlen(path) < sizeof(sun.sun_path)) {
		rg_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	} else {
		dirfd = open(cfg->queue_directory, O_PATH | O_DIRECTORY | O_CLOEXEC);
		snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d/%s", dirfd,
			 PICKUP_SOCKET_NAME);
	}
	int e = connect_waiting(&sun, c);
	if (dirfd >= 0)
		close(dirfd);
	if (e != 0)
		return fail(EX_TEMPFAIL, "cannot reach the mail server at %s (%s): is relayguard "
			    "running? message not sent", path, strerror(e));
	struct timeval tv = {SMTP_TIMEOUT, 0};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return EX_OK;
}

/* read_line - one reply line (CRLF removed, truncated to fit); false at EOF. */
static bool read_line(struct conn *c, char *line, size_t len)
{
	size_t k = 0;
	for (;;) {
		if (c->used == c->have) {
			ssize_t n = read(c->fd, c->buf, sizeof(c->buf));
			if (n <= 0)
				return false;
			c->have = (size_t)n;
			c->used = 0;
		}
		char ch = c->buf[c->used++];
		if (ch == '\n')
			break;
		if (ch != '\r' && k + 1 < len)
			line[k++] = ch;
	}
	line[k] = '\0';
	return true;
}

/* read_reply - a whole (multi-line) reply; its code, or 0 when the server is gone. */
static int read_reply(struct conn *c)
{
	char line[REPLY_MAX];
	bool first = true;
	for (;;) {
		if (!read_line(c, line, sizeof(line))) {
			snprintf(c->reply, sizeof(c->reply), "connection closed by the server");
			return 0;
		}
		if (first)
			rg_strlcpy(c->reply, line, sizeof(c->reply));
		first = false;
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5') {
			snprintf(c->reply, sizeof(c->reply), "unexpected reply \"%.200s\"", line);
			return 0;
		}
		if (line[3] != '-')
			return atoi(line);
	}
}

static bool send_all(struct conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* command - send a line, read the reply's code (0: the server is gone). */
static int command(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int command(struct conn *c, const char *fmt, ...)
{
	char line[ADDR_MAX + 300];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || !send_all(c, line, (size_t)n)) {
		snprintf(c->reply, sizeof(c->reply), "connection lost");
		return 0;
	}
	return read_reply(c);
}

/* failed - a reply that is not the wanted class, as an exit code; 5xx uses
 * CODE5, except that a policy refusal (5.7.x) is EX_NOPERM. */
static int failed(const struct conn *c, int code, const char *what, int code5)
{
	bool policy = strlen(c->reply) > 8 && strncmp(c->reply + 4, "5.7.", 4) == 0;
	int ex = code == 0 || code / 100 == 4 ? EX_TEMPFAIL : policy ? EX_NOPERM : code5;
	return fail(ex, "%s: %s; message not sent", what, c->reply);
}

/* send_text - the message, dot-stuffed, then the final dot. */
static bool send_text(struct conn *c, const struct strbuf *text)
{
	struct strbuf out;
	strbuf_init(&out);
	for (size_t off = 0; off < text->len;) {
		size_t n = (size_t)(strstr(text->data + off, "\r\n") - (text->data + off)) + 2;
		if (text->data[off] == '.')
			strbuf_puts(&out, ".");
		strbuf_append(&out, text->data + off, n);
		off += n;
	}
	strbuf_puts(&out, ".\r\n");
	bool ok = send_all(c, out.data, out.len);
	strbuf_free(&out);
	return ok;
}

/* transaction - MAIL, every RCPT (any refusal: nothing is sent), DATA. */
static int transaction(struct conn *c, const struct outgoing *m)
{
	char what[ADDR_MAX + 300];
	int code = command(c, "MAIL FROM:<%s>\r\n", m->sender);
	snprintf(what, sizeof(what), "sender <%s> refused", m->sender);
	if (code / 100 != 2)
		return failed(c, code, what, EX_DATAERR);
	for (size_t i = 0; i < m->rcpts.n; i++) {
		code = command(c, "RCPT TO:<%s>\r\n", m->rcpts.v[i]);
		snprintf(what, sizeof(what), "recipient <%s> refused", m->rcpts.v[i]);
		if (code / 100 != 2)
			return failed(c, code, what, EX_NOUSER);
	}
	code = command(c, "DATA\r\n");
	if (code != 354)
		return failed(c, code, "DATA refused", EX_UNAVAILABLE);
	code = send_text(c, &m->text) ? read_reply(c) : 0;
	if (code / 100 != 2)
		return failed(c, code, "message refused", code == 552 ? EX_DATAERR : EX_UNAVAILABLE);
	return EX_OK;
}

/* deliver - the whole dialogue over the pickup socket. */
static int deliver(const struct config *cfg, const struct outgoing *m)
{
	struct conn c = {.fd = -1};
	int rc = connect_pickup(cfg, &c);
	if (rc != EX_OK)
		goto out;
	int code = read_reply(&c);
	if (code / 100 != 2) {
		rc = failed(&c, code, "the server refused the connection", EX_UNAVAILABLE);
		goto out;
	}
	code = command(&c, "EHLO %s\r\n", "localhost");
	if (code / 100 != 2) {
		rc = failed(&c, code, "EHLO refused", EX_PROTOCOL);
		goto out;
	}
	rc = transaction(&c, m);
	if (rc == EX_OK)
		command(&c, "QUIT\r\n");
out:
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}

/* not_sending - -bp: what mailq is, `relayguard queue list`; -bi: what
 * newaliases would build does not exist (alias files are read as they are). */
static int not_sending(const struct sm_opts *o)
{
	if (o->n_rcpts > 0)
		return fail(EX_USAGE, "%s takes no recipients", o->mode == SM_MAILQ ? "-bp" : "-bi");
	if (o->mode == SM_NEWALIASES) {
		puts("relayguard reads alias files (alias_maps) directly: there is no database to "
		     "build; a reload (systemctl reload relayguard, or SIGHUP) picks up edits");
		return EX_OK;
	}
	char *args[] = {"list", "-c", (char *)o->config, NULL};
	return queue_main(o->config ? 3 : 1, args);
}

int sendmail_main(int argc, char **argv)
{
	struct sm_opts o = {0};
	int rc = parse_options(argc, argv, &o);
	if (rc <= 0)
		return rc == 0 ? EX_OK : EX_USAGE;
	if (o.mode != SM_SEND)
		return not_sending(&o);
	struct config *cfg = cli_load_config(o.config, false);
	if (cfg == NULL)
		return EX_CONFIG;
	struct strbuf in;
	struct outgoing m = {0};
	strbuf_init(&in);
	strbuf_init(&m.text);
	strbuf_puts(&in, ""); /* data is never NULL below */
	rc = read_message(stdin, !o.ignore_dots, cfg->message_size_limit, &in);
	if (rc == EX_OK)
		rc = compose(&o, cfg, &in, &m);
	if (rc == EX_OK)
		rc = deliver(cfg, &m);
	strbuf_free(&in);
	strbuf_free(&m.text);
	rcpt_free(&m.rcpts);
	config_free(cfg);
	return rc;
}
