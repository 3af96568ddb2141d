# jobs: the SQLite store (and, later, the job supervisor, pipeline stages and trainer).
libbitdistill_a_SOURCES += jobs/store.c jobs/store.h jobs/writer.c jobs/writer.h jobs/files.c \
	jobs/files.h jobs/jobrec.c jobs/jobrec.h jobs/better.c jobs/better.h jobs/supervisor.c \
	jobs/supervisor.h jobs/results.c jobs/results.h
