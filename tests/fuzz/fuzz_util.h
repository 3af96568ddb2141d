/*
 * tests/fuzz/fuzz_util.h — shared by the libFuzzer targets: write the input to a private file
 * (the loaders under test take paths and mmap them, so the fuzzer goes through the same code
 * the daemon runs).
 */
#ifndef BD_TESTS_FUZZ_UTIL_H
#define BD_TESTS_FUZZ_UTIL_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A directory private to this process (under $TMPDIR or /tmp), made once. Borrowed string. */
static inline const char *fuzz_dir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/bdfuzz.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

/* Write data to fuzz_dir()/name (replacing it); path gets the full name. Aborts on I/O
 * errors (those are the harness's, not the target's). */
static inline void fuzz_write(const char *name, const uint8_t *data, size_t size, char *path,
                              size_t plen)
{
    snprintf(path, plen, "%s/%s", fuzz_dir(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0)
            abort();
        off += (size_t)w;
    }
    close(fd);
}

#endif
