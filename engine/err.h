/*
 * engine/err.h — status codes and error messages shared by every engine object.
 *
 * Functions that act return 0 or a negative ENG_E* code; eng_strerror() names the code. Objects
 * keep the last detailed message (naming the file, tensor or field) in a fixed buffer, readable
 * with their `_errmsg()` accessor; constructors that fail before an object exists write the
 * message into a caller buffer of ENG_ERR_LEN bytes instead.
 */
#ifndef BD_ENGINE_ERR_H
#define BD_ENGINE_ERR_H

#include <stddef.h>

#define ENG_ERR_LEN 512

#define ENG_STATUS_MAP(X)                                                                          \
    X(EIO, -1, "input/output error")                                                               \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(EFORMAT, -3, "malformed file")                                                               \
    X(ETRUNC, -4, "truncated file")                                                                \
    X(ECONFIG, -5, "invalid or unsupported model configuration")                                   \
    X(EMISSING, -6, "missing tensor or field")                                                     \
    X(ESHAPE, -7, "tensor shape or dtype mismatch")                                                \
    X(EINVAL, -8, "invalid argument")                                                              \
    X(ERANGE, -9, "value out of range")                                                            \
    X(EUNSUPPORTED, -10, "unsupported feature")                                                    \
    X(ETOKENIZER, -11, "invalid tokenizer")                                                        \
    X(EINTERNAL, -12, "internal engine failure")

enum eng_status {
    ENG_OK = 0,
#define ENG_STATUS_ENUM_(name, code, text) ENG_##name = code,
    ENG_STATUS_MAP(ENG_STATUS_ENUM_)
#undef ENG_STATUS_ENUM_
};

/* A static, human-readable name for a status code (never NULL). */
const char *eng_strerror(int status);

/* printf into err (ENG_ERR_LEN bytes; NULL ignored) and return status, for `return eng_fail(...)`. */
int eng_fail(char *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
