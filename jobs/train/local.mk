# jobs/train: the trainer (prefix trn_); included by the top Makefile.am.
libbitdistill_a_SOURCES += jobs/train/ops.c
libbitdistill_a_SOURCES += jobs/train/model.c
libbitdistill_a_SOURCES += jobs/train/step.c
EXTRA_DIST += tests/fixtures/train tools/make_train_fixtures.py

check_PROGRAMS += tests/test-trn-parity
TESTS += tests/test-trn-parity
tests_test_trn_parity_LDADD = $(BD_ALL_LIBS)

check_PROGRAMS += tests/test-trn-ops
TESTS += tests/test-trn-ops
tests_test_trn_ops_LDADD = $(BD_ALL_LIBS)
libbitdistill_a_SOURCES += jobs/train/data.c
libbitdistill_a_SOURCES += jobs/train/metrics.c

check_PROGRAMS += tests/test-trn-metrics
TESTS += tests/test-trn-metrics
tests_test_trn_metrics_LDADD = $(BD_ALL_LIBS)
libbitdistill_a_SOURCES += jobs/train/ckpt.c jobs/train/pipeline.c

check_PROGRAMS += tests/test-trn-pipeline
TESTS += tests/test-trn-pipeline
tests_test_trn_pipeline_LDADD = $(BD_ALL_LIBS)

check_PROGRAMS += tests/test-trn-data
TESTS += tests/test-trn-data
tests_test_trn_data_LDADD = $(BD_ALL_LIBS)
