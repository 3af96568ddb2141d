# bench: `bitdistill bench SUITE` (benchmarks, not timed tests). Suites register in bench/bench.c.
bitdistill_SOURCES += bench/bench.h bench/bench.c bench/kernels.c bench/e2e.c bench/train.c
# Side by side with llama.cpp and ik_llama.cpp (docs/performance.md); its GPU-host wrapper.
dist_noinst_SCRIPTS += bench/peers.sh
EXTRA_DIST += tools/peers_device_run.sh
dist_noinst_SCRIPTS += tests/test-bench-peers.sh
TESTS += tests/test-bench-peers.sh
