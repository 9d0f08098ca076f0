/*
 * demo - relayguard demo: the open-relay attack played on loopback, then
 * the fix, for a person watching a terminal (and as an HTML page).
 *
 * Owns: the story (story.c): the lab's DNS zone and two servers, the four
 * steps and what each must show, the exit status.
 * Must not: touch anything but loopback and reserved domains, or leave a
 * process or (without keep_dir) a file behind.
 */
#ifndef RG_DEMO_H
#define RG_DEMO_H

#include <stdbool.h>

struct demo_opts {
	const char *html_file; /* write the story there too, or NULL */
	const char *keep_dir;  /* make the lab under it and keep it, or NULL */
	bool step;             /* wait for Enter between steps (on a terminal) */
};

#define DEMO_EXIT_OK 0
#define DEMO_EXIT_FAILED 1      /* a step did not have its expected outcome */
#define DEMO_EXIT_UNAVAILABLE 69 /* dnsmasq is missing */
#define DEMO_EXIT_INTERRUPTED 130

/* The lab's addresses (all loopback) and names (all reserved). */
#define DEMO_DNS_IP "127.0.0.1"
#define DEMO_RELAY_IP "127.0.0.25"
#define DEMO_MX_IP "127.0.0.26"
#define DEMO_ATTACKER_IP "127.0.0.66"
#define DEMO_USER_IP "127.0.0.77"
#define DEMO_PAYPAL_IP "127.0.0.50"

/* demo_run - play the story; one of the DEMO_EXIT_* statuses. */
int demo_run(const struct demo_opts *o);

#endif
