/*
 * engine/gguf.h — GGUF v3 container: a validating reader (mmap) and a writer.
 *
 * Layout (little-endian): "GGUF", u32 version 3, u64 tensor_count, u64 kv_count; kv_count x
 * {string key, u32 type, value}; tensor_count x {string name, u32 n_dims, u64 ne[n_dims],
 * u32 ggml_type, u64 offset}; padding to general.alignment (default 32); the data block, each
 * tensor at data + offset (offset a multiple of the alignment). string = u64 length + bytes.
 *
 * The reader checks every length, count, type, offset, size and alignment against the file
 * before handing anything out and reports the first problem with its byte position or the
 * name of the key/tensor. Tensors point into the read-only mapping.
 */
#ifndef BD_ENGINE_GGUF_H
#define BD_ENGINE_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum eng_gguf_type {
    ENG_GGUF_U8 = 0,
    ENG_GGUF_I8,
    ENG_GGUF_U16,
    ENG_GGUF_I16,
    ENG_GGUF_U32,
    ENG_GGUF_I32,
    ENG_GGUF_F32,
    ENG_GGUF_BOOL,
    ENG_GGUF_STRING,
    ENG_GGUF_ARRAY,
    ENG_GGUF_U64,
    ENG_GGUF_I64,
    ENG_GGUF_F64,
    ENG_GGUF_NTYPES
};

/* ggml tensor types used here (values from ggml.h). */
#define ENG_GGML_F32 0
#define ENG_GGML_F16 1
#define ENG_GGML_I8 24
#define ENG_GGML_I32 26

struct eng_gguf_str {
    const char *p; /* NOT NUL-terminated; inside the mapping */
    uint64_t n;
};

struct eng_gguf_kv {
    struct eng_gguf_str key;
    enum eng_gguf_type type;
    enum eng_gguf_type atype; /* arrays: element type */
    uint64_t count;           /* arrays: element count */
    const unsigned char *val; /* scalar value or first array element (unaligned) */
};

struct eng_gguf_tensor {
    struct eng_gguf_str name;
    uint32_t n_dims;
    uint64_t ne[4]; /* ggml order: ne[0] contiguous */
    uint32_t type;
    const void *data; /* inside the mapping, aligned to the file's alignment */
    uint64_t nbytes;
};

struct eng_gguf;

int eng_gguf_open(const char *path, struct eng_gguf **out, char *err);
void eng_gguf_free(struct eng_gguf *g);
size_t eng_gguf_file_size(const struct eng_gguf *g);

const struct eng_gguf_kv *eng_gguf_kv(const struct eng_gguf *g, const char *key);
const struct eng_gguf_tensor *eng_gguf_tensor(const struct eng_gguf *g, const char *name);
size_t eng_gguf_tensor_count(const struct eng_gguf *g);

/* Typed getters: 0 on success, ENG_EMISSING (absent) or ENG_EFORMAT (other type), with a
 * message naming the key. Integers accept any integer type that fits. */
int eng_gguf_get_u64(const struct eng_gguf *g, const char *key, uint64_t *v, char *err);
int eng_gguf_get_f32(const struct eng_gguf *g, const char *key, float *v, char *err);
int eng_gguf_get_bool(const struct eng_gguf *g, const char *key, int *v, char *err);
/* malloc'd NUL-terminated copy. */
int eng_gguf_get_str(const struct eng_gguf *g, const char *key, char **v, char *err);
/* i-th string of a string array (pointer into the file; walks the array: O(i)). */
int eng_gguf_arr_str(const struct eng_gguf_kv *kv, uint64_t i, struct eng_gguf_str *s);

/* ---- writer ---- */
struct eng_gguf_writer;

int eng_gguf_writer_create(struct eng_gguf_writer **out);
void eng_gguf_writer_free(struct eng_gguf_writer *w);
/* Values are copied; tensor data are borrowed until eng_gguf_writer_write returns. */
int eng_gguf_w_str(struct eng_gguf_writer *w, const char *key, const char *val);
int eng_gguf_w_u32(struct eng_gguf_writer *w, const char *key, uint32_t val);
int eng_gguf_w_u64(struct eng_gguf_writer *w, const char *key, uint64_t val);
int eng_gguf_w_f32(struct eng_gguf_writer *w, const char *key, float val);
int eng_gguf_w_bool(struct eng_gguf_writer *w, const char *key, int val);
int eng_gguf_w_arr_str(struct eng_gguf_writer *w, const char *key, const char *const *v,
                       uint64_t n);
int eng_gguf_w_arr_i32(struct eng_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
int eng_gguf_w_tensor(struct eng_gguf_writer *w, const char *name, uint32_t ggml_type,
                      uint32_t n_dims, const uint64_t *ne, const void *data, uint64_t nbytes);
/* Write to path (temp file, then rename). */
int eng_gguf_writer_write(struct eng_gguf_writer *w, const char *path, char *err);

#endif
