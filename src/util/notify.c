/*
 * notify.c - sd_notify wrappers (see notify.h).
 */
#include "util/notify.h"

#include <stdlib.h>
#include <time.h>

#include <systemd/sd-daemon.h>

/* notify_send - one datagram of newline-separated assignments; only if asked for. */
static void notify_send(const char *state, const char *status)
{
	if (getenv("NOTIFY_SOCKET") == NULL)
		return;
	if (status != NULL)
		sd_notifyf(0, "%s\nSTATUS=%s", state, status);
	else
		sd_notify(0, state);
}

void notify_ready(const char *status)
{
	notify_send("READY=1", status);
}

void notify_reloading(void)
{
	/* MONOTONIC_USEC: what Type=notify-reload (systemd 253+) asks for; harmless before */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (getenv("NOTIFY_SOCKET") != NULL)
		sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
			   (unsigned long long)ts.tv_sec * 1000000ULL +
				   (unsigned long long)ts.tv_nsec / 1000ULL);
}

void notify_stopping(const char *status)
{
	notify_send("STOPPING=1", status);
}
