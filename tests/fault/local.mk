# tests/fault: fault injection. failmalloc.so (LD_PRELOAD) fails the Nth allocation; swept over
# model loading (fault-load), request handling and job submission of a live daemon, plus disk
# full (RLIMIT_FSIZE) during uploads and checkpoints (tests/fault/test-fault.sh).
check_DATA += tests/fault/failmalloc.so
tests/fault/failmalloc.so: $(srcdir)/tests/fault/failmalloc.c
	@$(MKDIR_P) tests/fault
	$(AM_V_CCLD)$(CC) -shared -fPIC -O2 -g $(WARN_CFLAGS) -o $@ $< -ldl
CLEANFILES += tests/fault/failmalloc.so
check_PROGRAMS += tests/fault/fault-load
# Without the CUDA libraries (not needed to load models): their constructors allocate before the
# hook is ready and their destructors free through ASan, which refuses glibc's pointers.
tests_fault_fault_load_LDADD = $(filter-out libkrn_cuda.a -L% -lcublasLt -lcublas -lcudart -lstdc++ \
	-lnccl,$(BD_ALL_LIBS)) -ldl
tests_fault_fault_load_DEPENDENCIES = libbitdistill.a libllhttp.a
dist_noinst_SCRIPTS += tests/fault/test-fault.sh
TESTS += tests/fault/test-fault.sh
EXTRA_DIST += tests/fault/failmalloc.c
# The engine workers' hand-over of finished jobs, delayed by slownotify.so (LD_PRELOAD).
check_DATA += tests/fault/slownotify.so
tests/fault/slownotify.so: $(srcdir)/tests/fault/slownotify.c
	@$(MKDIR_P) tests/fault
	$(AM_V_CCLD)$(CC) -shared -fPIC -O2 -g $(WARN_CFLAGS) -o $@ $< -ldl
CLEANFILES += tests/fault/slownotify.so
EXTRA_DIST += tests/fault/slownotify.c
dist_noinst_SCRIPTS += tests/fault/test-sched-race.sh
TESTS += tests/fault/test-sched-race.sh
# Load and soak (bench/soak.sh SECONDS for the full run; 45 s in make check).
dist_noinst_SCRIPTS += tests/fault/test-soak.sh bench/soak.sh
TESTS += tests/fault/test-soak.sh
# Crash and restart: 20 SIGKILLs of the daemon during a job and uploads, SIGKILL of a trainer.
dist_noinst_SCRIPTS += tests/fault/test-crash.sh
TESTS += tests/fault/test-crash.sh
