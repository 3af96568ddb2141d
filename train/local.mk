# train: the trainer (prefix trn_) and `bitdistill train`; included by the top Makefile.am.
libbitdistill_a_SOURCES += train/ops.c train/model.c train/step.c \
	train/data.c train/metrics.c train/ckpt.c train/pipeline.c train/cast.c \
	train/dist.c train/dist.h train/device.c train/arena.c train/arena.h

EXTRA_DIST += tests/fixtures/train tools/make_train_fixtures.py tools/make_byte_tokenizer.py \
	docs/train.md

# finite differences of every backward op, quantizers, whole network
check_PROGRAMS += tests/test-trn-ops
TESTS += tests/test-trn-ops
tests_test_trn_ops_LDADD = $(BD_ALL_LIBS)

# one BitDistill step and 3 AdamW steps vs PyTorch; forward vs the engine
check_PROGRAMS += tests/test-trn-parity
TESTS += tests/test-trn-parity
tests_test_trn_parity_LDADD = $(BD_ALL_LIBS)

# ROUGE vs hand-computed values, BLEU vs sacrebleu
check_PROGRAMS += tests/test-trn-metrics
TESTS += tests/test-trn-metrics
tests_test_trn_metrics_LDADD = $(BD_ALL_LIBS)

# datasets of ../shared/data, templates, truncation, packing
check_PROGRAMS += tests/test-trn-data
TESTS += tests/test-trn-data
tests_test_trn_data_LDADD = $(BD_ALL_LIBS)

# `bitdistill train` end to end: bad configs, resume, the three methods on SST-2
check_PROGRAMS += tests/test-trn-pipeline
TESTS += tests/test-trn-pipeline
tests_test_trn_pipeline_LDADD = $(BD_ALL_LIBS)

# several training processes: Slurm hostlists, the environment, the TCP rendezvous of forked
# ranks on loopback (same NCCL id and layout everywhere, a missing rank named within the
# deadline), GPU placement
check_PROGRAMS += tests/test-trn-dist
TESTS += tests/test-trn-dist
tests_test_trn_dist_LDADD = $(BD_ALL_LIBS)
EXTRA_DIST += tools/cuda_dist_check.sh

# teacher_sha256 provenance: convert and train agree with sha256sum, single file and sharded
check_PROGRAMS += tests/test-trn-provenance
TESTS += tests/test-trn-provenance
tests_test_trn_provenance_LDADD = $(BD_ALL_LIBS)
