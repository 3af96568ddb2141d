# engine: sources and tests of this folder (included by the top Makefile.am).
libbitdistill_a_SOURCES += engine/err.c engine/safetensors.c engine/hfconfig.c engine/model.c \
	engine/forward.c engine/tokenizer.c engine/tokload.c \
	engine/init.c engine/cli.c engine/gguf.c \
	engine/student.c engine/step.c engine/studentio.c engine/classify.c \
	engine/bpetrain.c engine/bpecli.c engine/chat.c engine/chat.h

EXTRA_DIST += engine/configs tests/fixtures/engine tools/make_engine_fixtures.py tests/eng_util.h \
	tests/npm/package.json tests/npm/package-lock.json deploy/setup.d/npm-tokenizers.sh

check_PROGRAMS += tests/test-eng-model
TESTS += tests/test-eng-model
tests_test_eng_model_LDADD = $(BD_ALL_LIBS)

check_PROGRAMS += tests/test-eng-tok
TESTS += tests/test-eng-tok
tests_test_eng_tok_LDADD = $(BD_ALL_LIBS)

check_PROGRAMS += tests/test-eng-student
TESTS += tests/test-eng-student
tests_test_eng_student_LDADD = $(BD_ALL_LIBS)

dist_noinst_SCRIPTS += tests/test-eng-cli.sh
TESTS += tests/test-eng-cli.sh

check_PROGRAMS += tests/test-eng-fuzz
TESTS += tests/test-eng-fuzz
tests_test_eng_fuzz_LDADD = $(BD_ALL_LIBS)

check_PROGRAMS += tests/test-eng-step
TESTS += tests/test-eng-step
tests_test_eng_step_LDADD = $(BD_ALL_LIBS)

check_PROGRAMS += tests/test-eng-classify
TESTS += tests/test-eng-classify
tests_test_eng_classify_LDADD = $(BD_ALL_LIBS)

check_PROGRAMS += tests/test-eng-bpetrain
TESTS += tests/test-eng-bpetrain
tests_test_eng_bpetrain_LDADD = $(BD_ALL_LIBS)

dist_noinst_SCRIPTS += tests/test-eng-bpetrain-cli.sh
TESTS += tests/test-eng-bpetrain-cli.sh
EXTRA_DIST += tests/npm/hf-bpe-check.cjs
