/*
 * util/sha256.h — the one SHA-256 of the project, over OpenSSL's EVP: of bytes (API keys, job
 * configs, uploads), of a file (student files), and of a list of files hashed as one stream
 * (the shards of a checkpoint, in the order the caller gives; engine/safetensors.h supplies the
 * loader's order through eng_st_sha256). Digests are written as 64 lowercase hex digits and a NUL.
 *
 * Why one helper: five hand-rolled copies had drifted apart (the trainer hashed only
 * model.safetensors, the converter every shard), so a sharded teacher's provenance read
 * "unknown" from one and a hash from the other.
 */
#ifndef BD_UTIL_SHA256_H
#define BD_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_SHA256_HEX 65 /* 64 hex digits and the NUL */

/* SHA-256 of n bytes at p into hex. 0, or -ENOMEM when OpenSSL cannot set up a digest (hex is
 * then ""). */
int util_sha256_hex(const void *p, size_t n, char hex[UTIL_SHA256_HEX]);

/* SHA-256 of the whole file at path into hex; *bytes (may be NULL) gets its length. 0, or a
 * negative errno (-ENOENT, -EIO, ...) with hex set to "". */
int util_sha256_file(const char *path, char hex[UTIL_SHA256_HEX], uint64_t *bytes);

/* SHA-256 of the n files concatenated in the given order (what `cat paths... | sha256sum`
 * prints). 0, or a negative errno with hex "" and *bad (may be NULL) the index of the file that
 * failed. */
int util_sha256_files(const char *const *paths, size_t n, char hex[UTIL_SHA256_HEX], size_t *bad);

#endif
