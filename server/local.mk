# server: the daemon's main, config, HTTP core, TLS, auth, logging, metrics; the CLI's main.
bin_PROGRAMS += bitdistilld bitdistill
bitdistilld_SOURCES = server/main.c
bitdistilld_LDADD = $(BD_ALL_LIBS)
bitdistill_SOURCES = server/cli.c server/keys_cli.c
bitdistill_LDADD = $(BD_ALL_LIBS)
