/*
 * cmd/daemon.h — the daemon's main: config, store, server, signals, drain.
 */
#ifndef BD_CMD_DAEMON_H
#define BD_CMD_DAEMON_H

/* Run bitdistilld with these arguments until drained; returns the exit status. */
int cmd_daemon_main(int argc, char **argv);

#endif
