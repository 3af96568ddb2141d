/*
 * server/notify.h — systemd's sd_notify protocol without libsystemd: one datagram of
 * "KEY=VALUE\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET ('@' = abstract namespace).
 * Does nothing when NOTIFY_SOCKET is unset.
 */
#ifndef BD_SERVER_NOTIFY_H
#define BD_SERVER_NOTIFY_H

/* Send `state` (e.g. "READY=1\nSTATUS=serving"). Returns 1 sent, 0 no socket, -1 error. */
int srv_notify(const char *state);

#endif
