# jobs: the SQLite store (and, later, the job supervisor, pipeline stages and trainer).
libbitdistill_a_SOURCES += jobs/store.c jobs/store.h
