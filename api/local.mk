# api: route table, error format, handlers.
libbitdistill_a_SOURCES += api/api.h api/error.c api/router.c api/routes.c api/health.c \
	api/keys.c api/infer.c api/infer.h api/compat.c api/models.c \
	api/files.c api/jobs.c api/query.c

check_PROGRAMS += tests/test-api-infer
TESTS += tests/test-api-infer
tests_test_api_infer_LDADD = $(BD_ALL_LIBS)
dist_noinst_SCRIPTS += tests/test-api-jobs.sh
TESTS += tests/test-api-jobs.sh
dist_noinst_SCRIPTS += tests/test-api-ft-openai.sh
TESTS += tests/test-api-ft-openai.sh
dist_noinst_SCRIPTS += tests/test-api-compat.sh
TESTS += tests/test-api-compat.sh
dist_noinst_SCRIPTS += tests/test-api-pairs.sh
TESTS += tests/test-api-pairs.sh
dist_noinst_SCRIPTS += tests/test-api-better.sh
TESTS += tests/test-api-better.sh
dist_noinst_SCRIPTS += tests/test-api-chat.sh
TESTS += tests/test-api-chat.sh
EXTRA_DIST += tests/npm/openai-chat.cjs
