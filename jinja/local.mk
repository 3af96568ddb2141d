# jinja: the Jinja2 template engine for chat templates (libc + jansson only).
libbitdistill_a_SOURCES += jinja/jinja.h jinja/jinja_impl.h jinja/value.c jinja/parse.c \
	jinja/render.c jinja/builtins.c jinja/strings.c

check_PROGRAMS += tests/test-jinja
TESTS += tests/test-jinja
tests_test_jinja_LDADD = $(BD_ALL_LIBS)
EXTRA_DIST += tests/fixtures/chat tools/make_chat_fixtures.py
