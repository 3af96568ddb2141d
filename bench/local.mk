# bench: `bitdistill bench SUITE` (benchmarks, not timed tests). Suites register in bench/bench.c.
bitdistill_SOURCES += bench/bench.h bench/bench.c bench/kernels.c bench/e2e.c bench/train.c
