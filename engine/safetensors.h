/*
 * engine/safetensors.h — read (by mmap) and write Hugging Face safetensors files.
 *
 * A file is: u64 little-endian header length N, N bytes of JSON
 * {"__metadata__": {...}, NAME: {"dtype", "shape", "data_offsets": [begin, end]}, ...}, then the
 * data block. eng_st_open() maps one file, a directory holding model.safetensors, or a directory
 * with model.safetensors.index.json and its shards; every header is validated (dtype known,
 * shape x element size == byte range, ranges inside the data block and non-overlapping) before
 * any tensor is handed out, with an error naming the file and tensor.
 */
#ifndef BD_ENGINE_SAFETENSORS_H
#define BD_ENGINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

enum eng_dtype {
    ENG_DT_F32 = 0,
    ENG_DT_F16,
    ENG_DT_BF16,
    ENG_DT_F64,
    ENG_DT_I8,
    ENG_DT_U8,
    ENG_DT_I16,
    ENG_DT_I32,
    ENG_DT_I64,
    ENG_DT_BOOL,
    ENG_DT_COUNT
};

#define ENG_ST_MAXDIM 8

struct eng_st_tensor {
    const char *name; /* borrowed from the eng_st */
    enum eng_dtype dtype;
    int ndim;
    int64_t shape[ENG_ST_MAXDIM]; /* elements per dim, outermost first */
    const void *data;             /* inside the mapping; NOT aligned in general */
    size_t nbytes;
    const char *file; /* path of the shard holding it (borrowed) */
};

struct eng_st;

/* Map `path` (file or directory, see above). On success *out owns the mappings; free with
 * eng_st_free. On failure returns a negative ENG_E* and writes a message into err. */
int eng_st_open(const char *path, struct eng_st **out, char *err);
void eng_st_free(struct eng_st *st);

/* Borrowed pointer to the tensor called name, or NULL. */
const struct eng_st_tensor *eng_st_find(const struct eng_st *st, const char *name);
size_t eng_st_count(const struct eng_st *st);
const struct eng_st_tensor *eng_st_at(const struct eng_st *st, size_t i);
/* Total bytes of the mapped files. */
size_t eng_st_mapped_bytes(const struct eng_st *st);

/* SHA-256 (hex) of the weights at `path` as eng_st_open() finds them: the one file, or every
 * shard in the order model.safetensors.index.json first names it, hashed as one stream (what
 * `cat shard1 shard2 ... | sha256sum` prints). This is a model's provenance hash, the same for
 * `bitdistill convert` and `bitdistill train`. 0, or a negative ENG_E* with a message in err. */
int eng_st_sha256(const char *path, char hex[65], char *err);

const char *eng_dtype_name(enum eng_dtype dt);
size_t eng_dtype_size(enum eng_dtype dt);
int64_t eng_st_numel(const struct eng_st_tensor *t);

/* Convert n elements of F32/F16/BF16 data (any alignment) to float. */
void eng_to_f32(enum eng_dtype dt, const void *src, float *dst, size_t n);
float eng_bf16_to_f32(uint16_t h);
uint16_t eng_f32_to_bf16(float f); /* round to nearest even, NaN kept */
float eng_f16_to_f32(uint16_t h);

/* One tensor to write: data is n elements of dtype (borrowed). */
struct eng_st_wtensor {
    const char *name;
    enum eng_dtype dtype;
    int ndim;
    int64_t shape[ENG_ST_MAXDIM];
    const void *data;
};

/* A tensor set over memory the caller keeps alive and unchanged until eng_st_free (names are
 * copied, data is borrowed): what a trainer hands the engine without writing a file. */
int eng_st_from_mem(const struct eng_st_wtensor *ts, size_t n, struct eng_st **out, char *err);

/* Write a safetensors file (temp name then rename). metadata may be NULL ({"format":"pt"}). */
int eng_st_write(const char *path, const struct eng_st_wtensor *ts, size_t n, char *err);

#endif
