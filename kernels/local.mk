# kernels: ternary/INT8 kernels, float ops, thread pool, BLAS wrapper (prefix krn_).
# Portable C goes into libbitdistill.a; each SIMD family is its own library with its own flags.
# BD_SIMD_LIBS order matters: libkrn_amx.a falls back to libkrn_avx512.a, so it comes first.

KRN_HDRS = kernels/krn.h kernels/quant.h kernels/gemm.h kernels/pool.h kernels/fops.h \
	kernels/blas.h kernels/dispatch.h kernels/internal.h
KRN_PORTABLE = kernels/krn.c kernels/pool.c kernels/i2.c kernels/qact.c kernels/head.c \
	kernels/half.c kernels/ref.c kernels/fops_ref.c kernels/fops.c
libbitdistill_a_SOURCES += $(KRN_HDRS) $(KRN_PORTABLE) kernels/blas.c

KRN_X86_512 = -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -ffp-contract=off

if HOST_X86_64
noinst_LIBRARIES += libkrn_amx.a libkrn_avx512.a libkrn_avx2.a
libkrn_avx512_a_SOURCES = kernels/x86_avx512.c kernels/fops_vec.c
libkrn_avx512_a_CPPFLAGS = $(AM_CPPFLAGS) -DKRN_SFX=avx512 -DKRN_VW=16
libkrn_avx512_a_CFLAGS = $(AM_CFLAGS) $(KRN_X86_512)
libkrn_avx2_a_SOURCES = kernels/x86_avx2.c kernels/fops_vec.c
libkrn_avx2_a_CPPFLAGS = $(AM_CPPFLAGS) -DKRN_SFX=avx2 -DKRN_VW=8
libkrn_avx2_a_CFLAGS = $(AM_CFLAGS) -mavx2 -mfma -mf16c -ffp-contract=off
libkrn_amx_a_SOURCES = kernels/x86_amx.c
libkrn_amx_a_CFLAGS = $(AM_CFLAGS) $(KRN_X86_512) -mamx-tile -mamx-int8
BD_SIMD_LIBS += libkrn_amx.a libkrn_avx512.a libkrn_avx2.a
endif

if HOST_AARCH64
noinst_LIBRARIES += libkrn_neon.a libkrn_neondot.a
libkrn_neon_a_SOURCES = kernels/arm_neon.c kernels/fops_vec.c
libkrn_neon_a_CPPFLAGS = $(AM_CPPFLAGS) -DKRN_SFX=neon -DKRN_VW=4 -DKRN_NEON_DOT=0
libkrn_neon_a_CFLAGS = $(AM_CFLAGS) -ffp-contract=off
libkrn_neondot_a_SOURCES = kernels/arm_neon.c
libkrn_neondot_a_CPPFLAGS = $(AM_CPPFLAGS) -DKRN_SFX=neondot -DKRN_NEON_DOT=1
libkrn_neondot_a_CFLAGS = $(AM_CFLAGS) -march=armv8.2-a+dotprod -ffp-contract=off
# the NEON actq reuses krn_actq_ref from libbitdistill.a: list it once more after them
BD_SIMD_LIBS += libkrn_neon.a libkrn_neondot.a libbitdistill.a
endif

# ---- tests ---------------------------------------------------------------------------------
KRN_TESTS = tests/test-krn-i2 tests/test-krn-head tests/test-krn-fops tests/test-krn-pool \
	tests/test-krn-amx
check_PROGRAMS += $(KRN_TESTS)
TESTS += $(KRN_TESTS)
EXTRA_DIST += tests/krn_test.h
tests_test_krn_i2_SOURCES = tests/test-krn-i2.c tests/krn_test.h
tests_test_krn_i2_LDADD = $(BD_ALL_LIBS)
tests_test_krn_head_SOURCES = tests/test-krn-head.c tests/krn_test.h
tests_test_krn_head_LDADD = $(BD_ALL_LIBS)
tests_test_krn_fops_SOURCES = tests/test-krn-fops.c tests/krn_test.h
tests_test_krn_fops_LDADD = $(BD_ALL_LIBS)
tests_test_krn_pool_SOURCES = tests/test-krn-pool.c
tests_test_krn_pool_LDADD = $(BD_ALL_LIBS)
tests_test_krn_amx_SOURCES = tests/test-krn-amx.c tests/krn_test.h
tests_test_krn_amx_LDADD = $(BD_ALL_LIBS)

# ---- NEON for real: the kernel tests cross-built for aarch64 (static) and run under qemu ------
# Needs Debian's gcc-aarch64-linux-gnu + qemu-user (deploy/packages/kernels.list); where
# configure found no AARCH64_CC the stamp records that and the wrapper prints a TAP SKIP.
KRN_ARM_DIR = tests/krn-arm64
KRN_ARM_CFLAGS = -std=gnu11 -O2 -static -ffp-contract=off -Wall -Wextra -Werror \
	-Wno-unused-parameter -D_GNU_SOURCE -I$(top_srcdir) -I$(top_builddir)
KRN_ARM_TESTS = test-krn-i2 test-krn-head test-krn-fops
check_DATA = $(KRN_ARM_DIR)/stamp
CLEANFILES += $(KRN_ARM_DIR)/stamp $(KRN_ARM_DIR)/*.o $(KRN_ARM_TESTS:%=$(KRN_ARM_DIR)/%)
TESTS += tests/test-krn-neon.sh
EXTRA_DIST += tests/test-krn-neon.sh
AM_TESTS_ENVIRONMENT += QEMU_AARCH64='$(QEMU_AARCH64)'; export QEMU_AARCH64;

$(KRN_ARM_DIR)/stamp: $(KRN_PORTABLE:%=$(srcdir)/%) $(KRN_HDRS:%=$(srcdir)/%) \
		$(srcdir)/kernels/arm_neon.c $(srcdir)/kernels/fops_vec.c $(srcdir)/tests/krn_test.h \
		$(srcdir)/tests/tap.h $(KRN_ARM_TESTS:%=$(srcdir)/tests/%.c)
	$(AM_V_GEN)$(MKDIR_P) $(KRN_ARM_DIR); rm -f $@; \
	if test -z "$(AARCH64_CC)"; then echo "no aarch64 cross compiler (aarch64-linux-gnu-gcc) found by configure" > $@; exit 0; fi; \
	objs=""; \
	for f in $(KRN_PORTABLE); do \
	  o=$(KRN_ARM_DIR)/`basename $$f .c`.o; objs="$$objs $$o"; \
	  $(AARCH64_CC) $(KRN_ARM_CFLAGS) -c $(srcdir)/$$f -o $$o || exit 1; \
	done; \
	$(AARCH64_CC) $(KRN_ARM_CFLAGS) -DKRN_SFX=neon -DKRN_NEON_DOT=0 -c $(srcdir)/kernels/arm_neon.c -o $(KRN_ARM_DIR)/neon.o && \
	$(AARCH64_CC) $(KRN_ARM_CFLAGS) -march=armv8.2-a+dotprod -DKRN_SFX=neondot -DKRN_NEON_DOT=1 -c $(srcdir)/kernels/arm_neon.c -o $(KRN_ARM_DIR)/neondot.o && \
	$(AARCH64_CC) $(KRN_ARM_CFLAGS) -DKRN_SFX=neon -DKRN_VW=4 -c $(srcdir)/kernels/fops_vec.c -o $(KRN_ARM_DIR)/fops_neon.o || exit 1; \
	for t in $(KRN_ARM_TESTS); do \
	  $(AARCH64_CC) $(KRN_ARM_CFLAGS) $(srcdir)/tests/$$t.c $$objs $(KRN_ARM_DIR)/neon.o $(KRN_ARM_DIR)/neondot.o \
	    $(KRN_ARM_DIR)/fops_neon.o -lpthread -lm -o $(KRN_ARM_DIR)/$$t || exit 1; \
	done; \
	echo "built with $(AARCH64_CC)" > $@
