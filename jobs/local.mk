# jobs: job records, uploaded files, results, the promotion rule and the job supervisor.
libbitdistill_a_SOURCES += jobs/files.c \
	jobs/files.h jobs/jobrec.c jobs/jobrec.h jobs/better.c jobs/better.h jobs/supervisor.c \
	jobs/supervisor.h jobs/results.c jobs/results.h
