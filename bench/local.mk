# bench: `bitdistill bench SUITE` (benchmarks, not timed tests). Suites register in bench/bench.c.
bitdistill_SOURCES += bench/bench.h bench/bench.c bench/kernels.c bench/e2e.c bench/train.c
# Side by side with llama.cpp and ik_llama.cpp (docs/performance.md); its GPU-host wrapper.
dist_noinst_SCRIPTS += bench/peers.sh
EXTRA_DIST += tools/peers_device_run.sh
dist_noinst_SCRIPTS += tests/test-bench-peers.sh
TESTS += tests/test-bench-peers.sh
# Serving: the load generator (one thread per connection, or -c: many connections on epoll),
# the serving, overload and soak scripts (bench/soak.sh is run by tests/fault/test-soak.sh) and
# the CPU time per input of the batched classification pass (bench/batchpass.c).
noinst_PROGRAMS += bench/loadgen bench/batchpass
bench_loadgen_SOURCES = bench/loadgen.c bench/loadgen_flood.c bench/loadgen.h
bench_loadgen_LDADD = -lpthread
bench_batchpass_SOURCES = bench/batchpass.c
bench_batchpass_LDADD = $(BD_ALL_LIBS)
dist_noinst_SCRIPTS += bench/serve.sh bench/overload.sh
EXTRA_DIST += bench/serve-lib.sh bench/serve-small.json
