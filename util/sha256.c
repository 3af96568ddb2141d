/*
 * util/sha256.c — see sha256.h. Files are read in 64 KiB blocks through one EVP context, so a
 * multi-gigabyte checkpoint is hashed in constant memory.
 */
#include "util/sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>

static void to_hex(const unsigned char md[32], char hex[UTIL_SHA256_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

int util_sha256_hex(const void *p, size_t n, char hex[UTIL_SHA256_HEX])
{
    unsigned char md[32];
    unsigned int len = 0;
    hex[0] = '\0';
    if (EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return -ENOMEM;
    to_hex(md, hex);
    return 0;
}

/* Feed the file at path into md; *bytes grows by its length. 0 or a negative errno. */
static int update_file(EVP_MD_CTX *md, const char *path, uint64_t *bytes)
{
    unsigned char buf[1 << 16];
    size_t k;
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno ? -errno : -EIO;
    while ((k = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (EVP_DigestUpdate(md, buf, k) != 1) {
            rc = -ENOMEM;
            break;
        }
        *bytes += k;
    }
    if (!rc && ferror(f))
        rc = -EIO;
    fclose(f);
    return rc;
}

/* The digest of the files, with the byte count of all of them. */
static int hash_files(const char *const *paths, size_t n, char hex[UTIL_SHA256_HEX],
                      uint64_t *bytes, size_t *bad)
{
    unsigned char dig[32];
    unsigned int len = 0;
    uint64_t total = 0;
    int rc = 0;
    hex[0] = '\0';
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = update_file(md, paths[i], &total))) {
            if (bad)
                *bad = i;
            goto out;
        }
    if (EVP_DigestFinal_ex(md, dig, &len) != 1 || len != 32) {
        rc = -ENOMEM;
        goto out;
    }
    to_hex(dig, hex);
    if (bytes)
        *bytes = total;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

int util_sha256_file(const char *path, char hex[UTIL_SHA256_HEX], uint64_t *bytes)
{
    return hash_files(&path, 1, hex, bytes, NULL);
}

int util_sha256_files(const char *const *paths, size_t n, char hex[UTIL_SHA256_HEX], size_t *bad)
{
    return hash_files(paths, n, hex, NULL, bad);
}
