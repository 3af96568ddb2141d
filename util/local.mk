# util: the lowest folder, small helpers over libraries that every other folder may include
# (no project includes of its own).
libbitdistill_a_SOURCES += util/sha256.c util/sha256.h util/grow.h

# SHA-256 against FIPS 180-2 vectors and sha256sum, bytes, files and shard lists
check_PROGRAMS += tests/test-util-sha256
TESTS += tests/test-util-sha256
tests_test_util_sha256_LDADD = $(BD_ALL_LIBS)
