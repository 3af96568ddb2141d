# store: the daemon's SQLite database (prefix store_) — migrations, the two connections, API keys
# — and the writer thread that runs write transactions off the loop thread. The tables of jobs,
# files and models are read and written by jobs/ through this store.
libbitdistill_a_SOURCES += store/store.c store/store.h store/writer.c store/writer.h
