/*
 * notify - tell the service manager how the server is doing (sd_notify).
 *
 * Owns: the READY=1 / RELOADING=1 / STOPPING=1 / STATUS= messages of a
 * Type=notify systemd unit, sent through libsystemd's sd_notify only when
 * NOTIFY_SOCKET is set (started by systemd, or by a test that listens).
 * Must not: decide when the server is ready; server.c calls it at the points
 * where that is true. Without NOTIFY_SOCKET every call does nothing.
 */
#ifndef RG_NOTIFY_H
#define RG_NOTIFY_H

/* Each message carries STATUS=status (when not NULL) for systemctl status. */

/* notify_ready - the listeners accept and the queue is recovered. */
void notify_ready(const char *status);
/* notify_reloading - a SIGHUP reload started (READY=1 again when it ends). */
void notify_reloading(void);
/* notify_stopping - SIGTERM: no new connections, finishing the current ones. */
void notify_stopping(const char *status);

#endif
