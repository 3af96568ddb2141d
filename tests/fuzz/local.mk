# tests/fuzz: libFuzzer targets, built with clang when configure found it (HAVE_CLANG) and run by
# make check for a bounded time each (tests/fuzz/test-fuzz.sh). The code under test is compiled
# again by clang with coverage and ASan+UBSan (FUZZ_SRCS, objects under tests/fuzz/obj/); the
# rest links from libbitdistill.a (the normal build's gcc objects). Not built in a sanitizer
# build: clang's ASan runtime cannot link against gcc-ASan objects (the normal build runs them).
FUZZ_TARGETS = tests/fuzz/fuzz-http tests/fuzz/fuzz-gguf tests/fuzz/fuzz-safetensors \
	tests/fuzz/fuzz-tokenizer tests/fuzz/fuzz-data tests/fuzz/fuzz-jinja
FUZZ_SRCS = log/log.c server/conf.c server/metrics.c server/tls.c server/auth.c \
	server/http.c server/server.c cmd/daemon.c \
	api/error.c api/router.c api/health.c api/keys.c api/infer.c api/models.c api/files.c \
	api/jobs.c api/query.c store/store.c jobs/files.c jobs/jobrec.c store/writer.c \
	jobs/supervisor.c jobs/results.c \
	engine/gguf.c engine/safetensors.c engine/tokenizer.c engine/tokload.c engine/hfconfig.c \
	engine/student.c engine/studentio.c train/data.c \
	jinja/value.c jinja/parse.c jinja/render.c jinja/builtins.c jinja/strings.c
FUZZ_OBJS = $(FUZZ_SRCS:%.c=tests/fuzz/obj/%.o)
FUZZ_CFLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror \
	-Wno-unused-parameter -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined -DBD_SRCDIR='"$(abs_top_srcdir)"'
FUZZ_COMPILE = $(CLANG) $(DEFS) $(DEFAULT_INCLUDES) $(AM_CPPFLAGS) $(CPPFLAGS) $(FUZZ_CFLAGS) \
	$(UV_CFLAGS) $(SQLITE_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PCRE2_CFLAGS) \
	$(UTF8PROC_CFLAGS) $(OPENBLAS_CFLAGS)

# The objects are kept between links (make would delete them as intermediates).
.SECONDARY: $(FUZZ_OBJS)
tests/fuzz/obj/%.o: $(srcdir)/%.c
	@$(MKDIR_P) $(@D)
	$(AM_V_CC)$(FUZZ_COMPILE) -c -o $@ $<

tests/fuzz/fuzz-%: $(srcdir)/tests/fuzz/fuzz-%.c $(srcdir)/tests/fuzz/fuzz_util.h $(FUZZ_OBJS) \
		libbitdistill.a libllhttp.a
	$(AM_V_CCLD)$(FUZZ_COMPILE) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(BD_ALL_LIBS) $(LIBS)

if HAVE_CLANG
if !SANITIZERS
check_SCRIPTS = $(FUZZ_TARGETS)
endif
endif
CLEANFILES += $(FUZZ_TARGETS)
clean-local: clean-fuzz
clean-fuzz:
	rm -rf tests/fuzz/obj

dist_noinst_SCRIPTS += tests/fuzz/test-fuzz.sh
TESTS += tests/fuzz/test-fuzz.sh
EXTRA_DIST += tests/fuzz/fuzz_util.h tests/fuzz/fuzz-http.c tests/fuzz/fuzz-gguf.c \
	tests/fuzz/fuzz-safetensors.c tests/fuzz/fuzz-tokenizer.c tests/fuzz/fuzz-data.c \
	tests/fuzz/fuzz-jinja.c \
	tests/fuzz/corpus tests/fuzz/micro-config.json
