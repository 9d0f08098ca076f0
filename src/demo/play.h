/*
 * play - one scripted SMTP client session for the demo, each command and
 * reply told in the report as it happens (the project's client, smtpc, on
 * an event loop of its own).
 *
 * Owns: the script's order (a command, its reply, the next; STARTTLS upgrades
 * the connection; DATA sends the message after a 354), stopping at the first
 * refusal (then QUIT), and the codes each command got.
 * Must not: decide whether a code is the expected one; story.c does.
 */
#ifndef RG_DEMO_PLAY_H
#define RG_DEMO_PLAY_H

#include <stdbool.h>
#include <stddef.h>

struct report;

#define PLAY_MAX 16

struct play_cmd {
	const char *line; /* sent as it is; "STARTTLS" and "DATA" have their meaning */
	const char *show; /* told instead of line (a credential), or NULL */
};

struct play_script {
	const char *who;        /* the server's name in the report */
	const char *server_ip;  /* IPv4 */
	unsigned port;
	const char *source_ip;  /* the client's address */
	const struct play_cmd *cmds;
	size_t n;               /* at most PLAY_MAX */
	const char *message;    /* DATA's text, CRLF line ends, no line starting with '.' */
};

struct play_result {
	int greeting;       /* the banner's code, 0 if none */
	int code[PLAY_MAX]; /* each command's reply code; 0: not sent */
	char reply[PLAY_MAX][256]; /* each command's reply, its first line */
	int data_code;      /* the reply to the end of the message, 0 if not sent */
	char data_reply[512];
	char last_reply[512]; /* the last reply's first line */
};

/* play_run - run the script; false when the connection failed before its end. */
bool play_run(const struct play_script *s, struct report *rep, struct play_result *res);

#endif
