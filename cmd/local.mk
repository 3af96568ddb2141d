# cmd: the entry points — bitdistilld's main and the daemon's start-up/drain (cmd/daemon.c),
# and the `bitdistill` CLI's table of subcommands (cmd/cli.c) with its `keys` and `serve`.
# The top layer: it may include every folder; no folder includes it.
bin_PROGRAMS += bitdistilld bitdistill
bitdistilld_SOURCES = cmd/main.c cmd/daemon.c cmd/daemon.h
bitdistilld_LDADD = $(BD_ALL_LIBS)
bitdistill_SOURCES = cmd/cli.c cmd/cli.h cmd/keys_cli.c cmd/daemon.c cmd/daemon.h
bitdistill_LDADD = $(BD_ALL_LIBS)
