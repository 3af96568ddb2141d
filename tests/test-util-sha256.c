/*
 * tests/test-util-sha256.c — util/sha256.h against independent references: the FIPS 180-2
 * example digests for bytes, and the system's `sha256sum` for files (one larger than the 64 KiB
 * read block, an empty one) and for a list of files hashed as one stream; missing files fail
 * with -ENOENT and name which one.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/tap.h"
#include "util/sha256.h"

/* `sha256sum` of the concatenation of the files in `args` (a shell word list), or "". */
static void sha256sum_of(const char *args, char out[UTIL_SHA256_HEX])
{
    char cmd[2048];
    out[0] = '\0';
    snprintf(cmd, sizeof(cmd), "cat %s | sha256sum", args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    if (fscanf(p, "%64s", out) != 1)
        out[0] = '\0';
    pclose(p);
}

static void write_file(const char *path, const unsigned char *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        if (n)
            fwrite(p, 1, n, f);
        fclose(f);
    }
}

int main(void)
{
    char hex[UTIL_SHA256_HEX], want[UTIL_SHA256_HEX];
    /* FIPS 180-2 appendix B.1 and B.2, and the empty message */
    static const char *const msgs[] = {
        "abc", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", ""};
    static const char *const digests[] = {
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"};
    for (int i = 0; i < 3; i++) {
        int rc = util_sha256_hex(msgs[i], strlen(msgs[i]), hex);
        TAP_OK(rc == 0 && !strcmp(hex, digests[i]),
               "bytes: \"%.20s\" hashes to FIPS 180-2's %.16s... (got %s)", msgs[i], digests[i],
               hex);
    }

    char dir[] = "/tmp/bd-test-sha-XXXXXX";
    if (!mkdtemp(dir)) {
        TAP_OK(0, "mkdtemp: %s", strerror(errno));
        return tap_done();
    }
    char a[64], b[64], e[64], none[64], args[512];
    snprintf(a, sizeof(a), "%s/a", dir);
    snprintf(b, sizeof(b), "%s/b", dir);
    snprintf(e, sizeof(e), "%s/empty", dir);
    snprintf(none, sizeof(none), "%s/none", dir);
    size_t na = 200000 + 17; /* three full 64 KiB blocks and a tail */
    unsigned char *buf = malloc(na);
    uint32_t x = 12345;
    for (size_t i = 0; i < na; i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = (unsigned char)(x >> 24);
    }
    write_file(a, buf, na);
    write_file(b, (const unsigned char *)"shard two\n", 10);
    write_file(e, NULL, 0);

    uint64_t bytes = 0;
    int rc = util_sha256_file(a, hex, &bytes);
    sha256sum_of(a, want);
    TAP_OK(rc == 0 && want[0] && !strcmp(hex, want), "file of %zu bytes: as sha256sum (%s, got %s)",
           na, want, hex);
    TAP_OK(bytes == na, "and its length is counted (%llu)", (unsigned long long)bytes);
    rc = util_sha256_hex(buf, na, hex);
    TAP_OK(rc == 0 && !strcmp(hex, want), "the same bytes in memory hash the same");
    rc = util_sha256_file(e, hex, &bytes);
    TAP_OK(rc == 0 && bytes == 0 && !strcmp(hex, digests[2]),
           "an empty file hashes as the empty message");

    const char *list[] = {a, b, e};
    snprintf(args, sizeof(args), "%s %s %s", a, b, e);
    sha256sum_of(args, want);
    rc = util_sha256_files(list, 3, hex, NULL);
    TAP_OK(rc == 0 && want[0] && !strcmp(hex, want),
           "three files as one stream: as `cat | sha256sum` (%s)", want);
    const char *swapped[] = {b, a, e};
    rc = util_sha256_files(swapped, 3, hex, NULL);
    TAP_OK(rc == 0 && strcmp(hex, want), "the order of the files matters");

    rc = util_sha256_file(none, hex, NULL);
    TAP_OK(rc == -ENOENT && hex[0] == '\0', "a missing file: -ENOENT and no digest (rc %d)", rc);
    const char *holed[] = {a, none, b};
    size_t bad = 99;
    rc = util_sha256_files(holed, 3, hex, &bad);
    TAP_OK(rc == -ENOENT && bad == 1 && hex[0] == '\0',
           "a missing file in a list: -ENOENT, index %zu", bad);

    free(buf);
    unlink(a);
    unlink(b);
    unlink(e);
    rmdir(dir);
    return tap_done();
}
