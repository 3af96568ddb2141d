/*
 * engine/safetensors.c — safetensors reader (mmap, validated) and writer.
 *
 * Workload: opened once per model load; lookups by name happen a few hundred times, so a
 * linear scan over the tensor table is enough. Data are never copied here: tensors point into
 * the read-only mappings, which live until eng_st_free().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/err.h"
#include "engine/safetensors.h"
#include "util/sha256.h"

#define ST_MAX_HEADER (100u << 20) /* the format's own limit: 100 MB of JSON */

struct st_file {
    char *path;
    void *map;   /* whole file, PROT_READ */
    size_t size; /* bytes */
};

struct eng_st {
    struct st_file *files;
    size_t nfiles;
    struct eng_st_tensor *tensors;
    size_t ntensors, cap;
    char **names; /* owned copies, parallel to tensors */
};

static const char *const dt_names[ENG_DT_COUNT] = {"F32", "F16", "BF16", "F64", "I8",
                                                   "U8",  "I16", "I32",  "I64", "BOOL"};
static const size_t dt_sizes[ENG_DT_COUNT] = {4, 2, 2, 8, 1, 1, 2, 4, 8, 1};

const char *eng_dtype_name(enum eng_dtype dt)
{
    return (unsigned)dt < ENG_DT_COUNT ? dt_names[dt] : "?";
}

size_t eng_dtype_size(enum eng_dtype dt)
{
    return (unsigned)dt < ENG_DT_COUNT ? dt_sizes[dt] : 0;
}

int64_t eng_st_numel(const struct eng_st_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

float eng_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t eng_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float eng_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ffu;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void eng_to_f32(enum eng_dtype dt, const void *src, float *dst, size_t n)
{
    const unsigned char *p = src;
    uint16_t h;
    switch (dt) {
    case ENG_DT_F32: memcpy(dst, src, n * 4); break;
    case ENG_DT_BF16:
        for (size_t i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            dst[i] = eng_bf16_to_f32(h);
        }
        break;
    case ENG_DT_F16:
        for (size_t i = 0; i < n; i++) {
            memcpy(&h, p + 2 * i, 2);
            dst[i] = eng_f16_to_f32(h);
        }
        break;
    default: memset(dst, 0, n * sizeof(*dst)); break;
    }
}

void eng_st_free(struct eng_st *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->nfiles; i++) {
        if (st->files[i].map)
            munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    for (size_t i = 0; i < st->ntensors; i++)
        free(st->names[i]);
    free(st->files);
    free(st->tensors);
    free(st->names);
    free(st);
}

int eng_st_from_mem(const struct eng_st_wtensor *ts, size_t n, struct eng_st **out, char *err)
{
    struct eng_st *st = calloc(1, sizeof(*st));
    *out = NULL;
    if (!st || !(st->tensors = calloc(n ? n : 1, sizeof(*st->tensors))) ||
        !(st->names = calloc(n ? n : 1, sizeof(*st->names)))) {
        eng_st_free(st);
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    }
    st->cap = n;
    for (size_t i = 0; i < n; i++) {
        struct eng_st_tensor *t = &st->tensors[i];
        if ((unsigned)ts[i].dtype >= ENG_DT_COUNT || ts[i].ndim < 0 || ts[i].ndim > ENG_ST_MAXDIM) {
            eng_st_free(st);
            return eng_fail(err, ENG_EINVAL, "in-memory tensor '%s': bad dtype or rank",
                            ts[i].name);
        }
        if (!(st->names[i] = strdup(ts[i].name))) {
            eng_st_free(st);
            return eng_fail(err, ENG_ENOMEM, "out of memory");
        }
        st->ntensors = i + 1;
        t->name = st->names[i];
        t->dtype = ts[i].dtype;
        t->ndim = ts[i].ndim;
        size_t nb = dt_sizes[t->dtype];
        for (int d = 0; d < t->ndim; d++) {
            t->shape[d] = ts[i].shape[d];
            nb *= (size_t)ts[i].shape[d];
        }
        t->data = ts[i].data;
        t->nbytes = nb;
        t->file = "(memory)";
    }
    *out = st;
    return 0;
}

const struct eng_st_tensor *eng_st_find(const struct eng_st *st, const char *name)
{
    for (size_t i = 0; i < st->ntensors; i++)
        if (!strcmp(st->tensors[i].name, name))
            return &st->tensors[i];
    return NULL;
}

size_t eng_st_count(const struct eng_st *st)
{
    return st->ntensors;
}

const struct eng_st_tensor *eng_st_at(const struct eng_st *st, size_t i)
{
    return i < st->ntensors ? &st->tensors[i] : NULL;
}

size_t eng_st_mapped_bytes(const struct eng_st *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->nfiles; i++)
        n += st->files[i].size;
    return n;
}

int eng_st_sha256(const char *path, char hex[65], char *err)
{
    struct eng_st *st = NULL;
    const char **paths = NULL;
    size_t bad = 0;
    int rc;
    hex[0] = '\0';
    if ((rc = eng_st_open(path, &st, err)))
        return rc;
    if (!(paths = malloc(st->nfiles * sizeof(*paths)))) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < st->nfiles; i++)
        paths[i] = st->files[i].path;
    if ((rc = util_sha256_files(paths, st->nfiles, hex, &bad)))
        rc = eng_fail(err, rc == -ENOMEM ? ENG_ENOMEM : ENG_EIO, "cannot hash '%s': %s",
                      rc == -ENOMEM ? path : paths[bad], strerror(-rc));
out:
    free(paths);
    eng_st_free(st);
    return rc;
}

static int map_file(const char *path, struct st_file *f, char *err)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return eng_fail(err, ENG_EIO, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return eng_fail(err, ENG_EIO, "'%s' is not a regular file", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        close(fd);
        return eng_fail(err, ENG_ETRUNC,
                        "'%s': truncated safetensors file (%zu bytes, header "
                        "length needs 8)",
                        path, f->size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return eng_fail(err, ENG_EIO, "cannot mmap '%s': %s", path, strerror(errno));
    }
    f->path = strdup(path);
    return f->path ? 0 : eng_fail(err, ENG_ENOMEM, "out of memory");
}

static int parse_dtype(const char *s)
{
    for (int i = 0; i < ENG_DT_COUNT; i++)
        if (!strcmp(s, dt_names[i]))
            return i;
    return -1;
}

struct range_ {
    uint64_t b, e;
    const char *name;
};

static int cmp_range(const void *a, const void *b)
{
    const struct range_ *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e < y->e ? -1 : x->e > y->e);
}

/* Parse and validate the header of file f, appending its tensors to st. */
static int parse_file(struct eng_st *st, struct st_file *f, char *err)
{
    uint64_t hlen;
    const char *key;
    json_t *root, *val;
    json_error_t jerr;
    struct range_ *ranges = NULL;
    size_t nr = 0;
    int rc = 0;

    memcpy(&hlen, f->map, 8); /* little-endian hosts only (x86-64, aarch64) */
    if (hlen > ST_MAX_HEADER)
        return eng_fail(err, ENG_EFORMAT, "'%s': header length %llu exceeds the 100 MB limit",
                        f->path, (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return eng_fail(err, ENG_ETRUNC,
                        "'%s': truncated: header says %llu bytes of JSON, "
                        "file has %zu after the length",
                        f->path, (unsigned long long)hlen, f->size - 8);
    root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return eng_fail(err, ENG_EFORMAT, "'%s': header is not valid JSON: %s (at byte %d)",
                        f->path, jerr.text, jerr.position);
    if (!json_is_object(root)) {
        rc = eng_fail(err, ENG_EFORMAT, "'%s': header is not a JSON object", f->path);
        goto out;
    }
    const unsigned char *data = (const unsigned char *)f->map + 8 + hlen;
    uint64_t dsize = f->size - 8 - hlen;
    ranges = calloc(json_object_size(root) + 1, sizeof(*ranges));
    if (!ranges) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    json_object_foreach(root, key, val)
    {
        if (!strcmp(key, "__metadata__"))
            continue;
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_object(val) || !json_is_string(jd) || !json_is_array(js) ||
            !json_is_array(jo) || json_array_size(jo) != 2) {
            rc = eng_fail(err, ENG_EFORMAT,
                          "'%s': tensor '%s': entry needs dtype, shape and "
                          "data_offsets[2]",
                          f->path, key);
            goto out;
        }
        int dt = parse_dtype(json_string_value(jd));
        if (dt < 0) {
            rc = eng_fail(err, ENG_EUNSUPPORTED, "'%s': tensor '%s': unsupported dtype '%s'",
                          f->path, key, json_string_value(jd));
            goto out;
        }
        if (json_array_size(js) > ENG_ST_MAXDIM) {
            rc = eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s': %zu dims (max %d)", f->path, key,
                          json_array_size(js), ENG_ST_MAXDIM);
            goto out;
        }
        if (st->ntensors == st->cap) {
            size_t nc = st->cap ? 2 * st->cap : 64;
            void *a = realloc(st->tensors, nc * sizeof(*st->tensors));
            if (a)
                st->tensors = a;
            void *b = a ? realloc(st->names, nc * sizeof(*st->names)) : NULL;
            if (!a || !b) {
                rc = eng_fail(err, ENG_ENOMEM, "out of memory");
                goto out;
            }
            st->names = b;
            st->cap = nc;
        }
        struct eng_st_tensor *t = &st->tensors[st->ntensors];
        memset(t, 0, sizeof(*t));
        t->dtype = (enum eng_dtype)dt;
        t->ndim = (int)json_array_size(js);
        unsigned __int128 numel = 1;
        for (int i = 0; i < t->ndim; i++) {
            json_t *d = json_array_get(js, (size_t)i);
            if (!json_is_integer(d) || json_integer_value(d) < 0) {
                rc = eng_fail(err, ENG_EFORMAT,
                              "'%s': tensor '%s': shape[%d] is not a "
                              "non-negative integer",
                              f->path, key, i);
                goto out;
            }
            t->shape[i] = json_integer_value(d);
            numel *= (uint64_t)t->shape[i];
        }
        json_t *b0 = json_array_get(jo, 0), *b1 = json_array_get(jo, 1);
        if (!json_is_integer(b0) || !json_is_integer(b1) || json_integer_value(b0) < 0 ||
            json_integer_value(b1) < json_integer_value(b0)) {
            rc = eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s': bad data_offsets", f->path, key);
            goto out;
        }
        uint64_t b = (uint64_t)json_integer_value(b0), e = (uint64_t)json_integer_value(b1);
        if (numel * dt_sizes[dt] != (unsigned __int128)(e - b)) {
            rc = eng_fail(err, ENG_ESHAPE,
                          "'%s': tensor '%s': %s shape needs %llu bytes but "
                          "data_offsets span %llu",
                          f->path, key, dt_names[dt], (unsigned long long)(numel * dt_sizes[dt]),
                          (unsigned long long)(e - b));
            goto out;
        }
        if (e > dsize) {
            rc = eng_fail(err, ENG_ETRUNC,
                          "'%s': tensor '%s': data [%llu, %llu) past the end of "
                          "the data block (%llu bytes): truncated file?",
                          f->path, key, (unsigned long long)b, (unsigned long long)e,
                          (unsigned long long)dsize);
            goto out;
        }
        st->names[st->ntensors] = strdup(key);
        if (!st->names[st->ntensors]) {
            rc = eng_fail(err, ENG_ENOMEM, "out of memory");
            goto out;
        }
        t->name = st->names[st->ntensors];
        t->data = data + b;
        t->nbytes = (size_t)(e - b);
        t->file = f->path;
        ranges[nr++] = (struct range_){b, e, t->name};
        st->ntensors++;
    }
    qsort(ranges, nr, sizeof(*ranges), cmp_range);
    for (size_t i = 1; i < nr; i++)
        if (ranges[i].b < ranges[i - 1].e) {
            rc = eng_fail(err, ENG_EFORMAT, "'%s': tensors '%s' and '%s' overlap", f->path,
                          ranges[i - 1].name, ranges[i].name);
            goto out;
        }
out:
    free(ranges);
    json_decref(root);
    return rc;
}

static int add_file(struct eng_st *st, const char *path, char *err)
{
    void *a = realloc(st->files, (st->nfiles + 1) * sizeof(*st->files));
    if (!a)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    st->files = a;
    struct st_file *f = &st->files[st->nfiles++];
    memset(f, 0, sizeof(*f));
    int rc = map_file(path, f, err);
    return rc ? rc : parse_file(st, f, err);
}

/* Sharded checkpoint: map every shard named in the index, check each listed tensor exists. */
static int open_index(struct eng_st *st, const char *dir, const char *index, char *err)
{
    json_error_t jerr;
    json_t *root = json_load_file(index, 0, &jerr), *map, *v;
    const char *key;
    char path[4096];
    int rc = 0;

    if (!root)
        return eng_fail(err, ENG_EFORMAT, "'%s': not valid JSON: %s (line %d)", index, jerr.text,
                        jerr.line);
    map = json_object_get(root, "weight_map");
    if (!json_is_object(map) || json_object_size(map) == 0) {
        rc = eng_fail(err, ENG_EFORMAT, "'%s': no \"weight_map\" object", index);
        goto out;
    }
    json_object_foreach(map, key, v)
    {
        const char *shard = json_string_value(v);
        if (!shard || strchr(shard, '/') || !strcmp(shard, "..")) {
            rc = eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s' maps to an invalid shard name",
                          index, key);
            goto out;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, shard);
        int seen = 0;
        for (size_t i = 0; i < st->nfiles && !seen; i++)
            seen = !strcmp(st->files[i].path, path);
        if (!seen && (rc = add_file(st, path, err)))
            goto out;
    }
    json_object_foreach(map, key, v)
    {
        const struct eng_st_tensor *t = eng_st_find(st, key);
        snprintf(path, sizeof(path), "%s/%s", dir, json_string_value(v));
        if (!t || strcmp(t->file, path)) {
            rc = eng_fail(err, ENG_EMISSING,
                          "'%s' lists tensor '%s' in '%s' but it is not "
                          "there",
                          index, key, json_string_value(v));
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int eng_st_open(const char *path, struct eng_st **out, char *err)
{
    struct stat sb;
    char buf[4096];
    int rc;
    struct eng_st *st = calloc(1, sizeof(*st));

    *out = NULL;
    if (!st)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    if (stat(path, &sb) < 0) {
        rc = eng_fail(err, ENG_EIO, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(buf, sizeof(buf), "%s/model.safetensors.index.json", path);
        if (access(buf, R_OK) == 0) {
            rc = open_index(st, path, buf, err);
        } else {
            snprintf(buf, sizeof(buf), "%s/model.safetensors", path);
            if (access(buf, R_OK) != 0) {
                rc = eng_fail(err, ENG_EMISSING,
                              "'%s' holds neither model.safetensors nor "
                              "model.safetensors.index.json",
                              path);
                goto fail;
            }
            rc = add_file(st, buf, err);
        }
    } else {
        rc = add_file(st, path, err);
    }
    if (rc)
        goto fail;
    *out = st;
    return 0;
fail:
    eng_st_free(st);
    return rc;
}

int eng_st_write(const char *path, const struct eng_st_wtensor *ts, size_t n, char *err)
{
    json_t *root = json_object(), *meta = json_object();
    char *hdr = NULL, tmp[4096];
    FILE *fp = NULL;
    uint64_t off = 0;
    int rc = 0;

    if (!root || !meta) {
        json_decref(meta);
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object(), *shape = json_array();
        uint64_t nb = eng_dtype_size(ts[i].dtype);
        for (int d = 0; d < ts[i].ndim; d++) {
            json_array_append_new(shape, json_integer(ts[i].shape[d]));
            nb *= (uint64_t)ts[i].shape[d];
        }
        json_object_set_new(e, "dtype", json_string(eng_dtype_name(ts[i].dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets",
                            json_pack("[II]", (json_int_t)off, (json_int_t)(off + nb)));
        json_object_set_new(root, ts[i].name, e);
        off += nb;
    }
    hdr = json_dumps(root, JSON_COMPACT);
    if (!hdr) {
        rc = eng_fail(err, ENG_ENOMEM, "out of memory");
        goto out;
    }
    /* Pad the header with spaces so the data block starts 8-byte aligned. */
    size_t hl = strlen(hdr), pad = (8 - (8 + hl) % 8) % 8;
    uint64_t hlen = hl + pad;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fp = fopen(tmp, "wb");
    if (!fp) {
        rc = eng_fail(err, ENG_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    int ok = fwrite(&hlen, 8, 1, fp) == 1 && fwrite(hdr, 1, hl, fp) == hl;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', fp) != EOF;
    for (size_t i = 0; ok && i < n; i++) {
        size_t nb = eng_dtype_size(ts[i].dtype);
        for (int d = 0; d < ts[i].ndim; d++)
            nb *= (size_t)ts[i].shape[d];
        ok = nb == 0 || fwrite(ts[i].data, 1, nb, fp) == nb;
    }
    if (fclose(fp) != 0)
        ok = 0;
    fp = NULL;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        rc = eng_fail(err, ENG_EIO, "cannot write '%s': %s", path, strerror(errno));
    }
out:
    free(hdr);
    json_decref(root);
    return rc;
}
