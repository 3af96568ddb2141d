/*
 * engine/gguf.c — GGUF v3 reader and writer (see gguf.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/err.h"
#include "engine/gguf.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_COUNT (1u << 24)

static const uint8_t type_size[ENG_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

struct eng_gguf {
    unsigned char *map;
    size_t size;
    struct eng_gguf_kv *kv;
    uint64_t nkv;
    struct eng_gguf_tensor *t;
    uint64_t nt;
    uint64_t alignment;
};

/* Bounds-checked cursor over the mapping. */
struct cur {
    const unsigned char *p;
    size_t off, size;
    char *err;
    const char *path;
};

static int need(struct cur *c, uint64_t n, const char *what)
{
    if (n > c->size - c->off)
        return eng_fail(c->err, ENG_ETRUNC,
                        "'%s': truncated at byte %zu reading %s (%llu bytes "
                        "needed, %zu left)",
                        c->path, c->off, what, (unsigned long long)n, c->size - c->off);
    return 0;
}

static int rd(struct cur *c, void *v, size_t n, const char *what)
{
    int rc = need(c, n, what);
    if (rc)
        return rc;
    memcpy(v, c->p + c->off, n);
    c->off += n;
    return 0;
}

static int rd_str(struct cur *c, struct eng_gguf_str *s, const char *what)
{
    int rc = rd(c, &s->n, 8, what);
    if (rc)
        return rc;
    if ((rc = need(c, s->n, what)))
        return rc;
    s->p = (const char *)c->p + c->off;
    c->off += s->n;
    return 0;
}

/* Skip one value of type ty (validating), for kv parsing. */
static int skip_val(struct cur *c, uint32_t ty, const char *key, int depth)
{
    struct eng_gguf_str s;
    if (ty >= ENG_GGUF_NTYPES)
        return eng_fail(c->err, ENG_EFORMAT, "'%s': key '%s' has unknown value type %u", c->path,
                        key, ty);
    if (ty == ENG_GGUF_STRING)
        return rd_str(c, &s, key);
    if (ty != ENG_GGUF_ARRAY) {
        int rc = need(c, type_size[ty], key);
        if (!rc)
            c->off += type_size[ty];
        return rc;
    }
    uint32_t at;
    uint64_t n;
    int rc;
    if (depth > 0)
        return eng_fail(c->err, ENG_EFORMAT, "'%s': key '%s': nested arrays are not supported",
                        c->path, key);
    if ((rc = rd(c, &at, 4, key)) || (rc = rd(c, &n, 8, key)))
        return rc;
    if (at >= ENG_GGUF_NTYPES || at == ENG_GGUF_ARRAY)
        return eng_fail(c->err, ENG_EFORMAT, "'%s': key '%s': bad array element type %u", c->path,
                        key, at);
    if (at != ENG_GGUF_STRING) {
        if (n > (c->size - c->off) / type_size[at])
            return eng_fail(c->err, ENG_ETRUNC,
                            "'%s': truncated: key '%s': array of %llu "
                            "elements runs past the end of the file",
                            c->path, key, (unsigned long long)n);
        c->off += n * type_size[at];
        return 0;
    }
    for (uint64_t i = 0; i < n; i++)
        if ((rc = rd_str(c, &s, key)))
            return rc;
    return 0;
}

static int str_eq(const struct eng_gguf_str *s, const char *z)
{
    size_t n = strlen(z);
    return s->n == n && !memcmp(s->p, z, n);
}

static size_t ggml_elsize(uint32_t type)
{
    switch (type) {
    case ENG_GGML_F32: return 4;
    case ENG_GGML_F16: return 2;
    case ENG_GGML_I8: return 1;
    case ENG_GGML_I32: return 4;
    default: return 0;
    }
}

void eng_gguf_free(struct eng_gguf *g)
{
    if (!g)
        return;
    if (g->map)
        munmap(g->map, g->size);
    free(g->kv);
    free(g->t);
    free(g);
}

static int parse(struct eng_gguf *g, const char *path, char *err)
{
    struct cur c = {g->map, 0, g->size, err, path};
    uint32_t magic, version;
    int rc;
    if ((rc = rd(&c, &magic, 4, "the magic")))
        return rc;
    if (magic != GGUF_MAGIC)
        return eng_fail(err, ENG_EFORMAT, "'%s': not a GGUF file (bad magic)", path);
    if ((rc = rd(&c, &version, 4, "the version")) || (rc = rd(&c, &g->nt, 8, "tensor_count")) ||
        (rc = rd(&c, &g->nkv, 8, "kv_count")))
        return rc;
    if (version != 3)
        return eng_fail(err, ENG_EUNSUPPORTED, "'%s': GGUF version %u (only 3 is supported)", path,
                        version);
    if (g->nt > GGUF_MAX_COUNT || g->nkv > GGUF_MAX_COUNT)
        return eng_fail(err, ENG_EFORMAT, "'%s': implausible counts (%llu tensors, %llu keys)",
                        path, (unsigned long long)g->nt, (unsigned long long)g->nkv);
    g->kv = calloc(g->nkv + 1, sizeof(*g->kv));
    g->t = calloc(g->nt + 1, sizeof(*g->t));
    if (!g->kv || !g->t)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    g->alignment = 32;
    for (uint64_t i = 0; i < g->nkv; i++) {
        struct eng_gguf_kv *kv = &g->kv[i];
        uint32_t ty;
        char kname[128];
        if ((rc = rd_str(&c, &kv->key, "a key")) || (rc = rd(&c, &ty, 4, "a value type")))
            return rc;
        snprintf(kname, sizeof(kname), "%.*s", (int)(kv->key.n < 100 ? kv->key.n : 100), kv->key.p);
        kv->type = (enum eng_gguf_type)ty;
        if (ty == ENG_GGUF_ARRAY) {
            uint32_t at;
            if (need(&c, 12, kname) == 0) {
                memcpy(&at, c.p + c.off, 4);
                memcpy(&kv->count, c.p + c.off + 4, 8);
                kv->atype = (enum eng_gguf_type)at;
                kv->val = c.p + c.off + 12;
            }
        } else {
            kv->val = c.p + c.off;
            kv->count = 1;
        }
        if ((rc = skip_val(&c, ty, kname, 0)))
            return rc;
        for (uint64_t j = 0; j < i; j++)
            if (g->kv[j].key.n == kv->key.n && !memcmp(g->kv[j].key.p, kv->key.p, kv->key.n))
                return eng_fail(err, ENG_EFORMAT, "'%s': key '%s' appears twice", path, kname);
        if (str_eq(&kv->key, "general.alignment")) {
            uint32_t a;
            if (ty != ENG_GGUF_U32)
                return eng_fail(err, ENG_EFORMAT, "'%s': general.alignment must be u32", path);
            memcpy(&a, kv->val, 4);
            if (a == 0 || (a & (a - 1)) || a > 65536)
                return eng_fail(err, ENG_EFORMAT,
                                "'%s': general.alignment %u is not a power of "
                                "two <= 65536",
                                path, a);
            g->alignment = a;
        }
    }
    for (uint64_t i = 0; i < g->nt; i++) {
        struct eng_gguf_tensor *t = &g->t[i];
        char tname[128];
        if ((rc = rd_str(&c, &t->name, "a tensor name")))
            return rc;
        snprintf(tname, sizeof(tname), "%.*s", (int)(t->name.n < 100 ? t->name.n : 100), t->name.p);
        if ((rc = rd(&c, &t->n_dims, 4, tname)))
            return rc;
        if (t->n_dims < 1 || t->n_dims > 4)
            return eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s' has %u dims (1..4)", path, tname,
                            t->n_dims);
        uint64_t off;
        if ((rc = rd(&c, t->ne, 8 * t->n_dims, tname)) || (rc = rd(&c, &t->type, 4, tname)) ||
            (rc = rd(&c, &off, 8, tname)))
            return rc;
        size_t es = ggml_elsize(t->type);
        if (!es)
            return eng_fail(err, ENG_EUNSUPPORTED,
                            "'%s': tensor '%s' has ggml type %u (F32, F16, "
                            "I8, I32 supported)",
                            path, tname, t->type);
        unsigned __int128 nb = es;
        for (uint32_t d = 0; d < t->n_dims; d++)
            nb *= t->ne[d];
        if (nb > (unsigned __int128)g->size)
            return eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s' is larger than the file", path,
                            tname);
        t->nbytes = (uint64_t)nb;
        if (off % g->alignment)
            return eng_fail(err, ENG_EFORMAT,
                            "'%s': tensor '%s' offset %llu is not aligned to "
                            "%llu",
                            path, tname, (unsigned long long)off, (unsigned long long)g->alignment);
        t->data = (const void *)(uintptr_t)off; /* fixed up below */
        for (uint64_t j = 0; j < i; j++)
            if (g->t[j].name.n == t->name.n && !memcmp(g->t[j].name.p, t->name.p, t->name.n))
                return eng_fail(err, ENG_EFORMAT, "'%s': tensor '%s' appears twice", path, tname);
    }
    size_t data = (c.off + g->alignment - 1) / g->alignment * g->alignment;
    if (g->nt && data > g->size)
        return eng_fail(err, ENG_ETRUNC, "'%s': truncated before the data block", path);
    for (uint64_t i = 0; i < g->nt; i++) {
        struct eng_gguf_tensor *t = &g->t[i];
        uint64_t off = (uint64_t)(uintptr_t)t->data;
        if (off > g->size - data || t->nbytes > g->size - data - off)
            return eng_fail(err, ENG_ETRUNC,
                            "'%s': tensor '%.*s' [%llu, +%llu) runs past the end "
                            "of the file (data block %zu bytes): truncated?",
                            path, (int)(t->name.n < 100 ? t->name.n : 100), t->name.p,
                            (unsigned long long)off, (unsigned long long)t->nbytes, g->size - data);
        t->data = g->map + data + off;
    }
    return 0;
}

int eng_gguf_open(const char *path, struct eng_gguf **out, char *err)
{
    struct stat sb;
    int rc;
    struct eng_gguf *g = calloc(1, sizeof(*g));
    *out = NULL;
    if (!g)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = eng_fail(err, ENG_EIO, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size < 24) {
        close(fd);
        rc = eng_fail(err, ENG_ETRUNC, "'%s': not a GGUF file (%lld bytes, header needs 24)", path,
                      (long long)sb.st_size);
        goto fail;
    }
    g->size = (size_t)sb.st_size;
    g->map = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (g->map == MAP_FAILED) {
        g->map = NULL;
        rc = eng_fail(err, ENG_EIO, "cannot mmap '%s': %s", path, strerror(errno));
        goto fail;
    }
    if ((rc = parse(g, path, err)))
        goto fail;
    *out = g;
    return 0;
fail:
    eng_gguf_free(g);
    return rc;
}

size_t eng_gguf_file_size(const struct eng_gguf *g)
{
    return g->size;
}
size_t eng_gguf_tensor_count(const struct eng_gguf *g)
{
    return g->nt;
}

const struct eng_gguf_kv *eng_gguf_kv(const struct eng_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->nkv; i++)
        if (str_eq(&g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

const struct eng_gguf_tensor *eng_gguf_tensor(const struct eng_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->nt; i++)
        if (str_eq(&g->t[i].name, name))
            return &g->t[i];
    return NULL;
}

int eng_gguf_get_u64(const struct eng_gguf *g, const char *key, uint64_t *v, char *err)
{
    const struct eng_gguf_kv *kv = eng_gguf_kv(g, key);
    if (!kv)
        return eng_fail(err, ENG_EMISSING, "GGUF key '%s' is missing", key);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    int32_t i32;
    int64_t i64;
    switch (kv->type) {
    case ENG_GGUF_U8:
        memcpy(&u8, kv->val, 1);
        *v = u8;
        return 0;
    case ENG_GGUF_U16:
        memcpy(&u16, kv->val, 2);
        *v = u16;
        return 0;
    case ENG_GGUF_U32:
        memcpy(&u32, kv->val, 4);
        *v = u32;
        return 0;
    case ENG_GGUF_U64: memcpy(v, kv->val, 8); return 0;
    case ENG_GGUF_I32:
        memcpy(&i32, kv->val, 4);
        if (i32 < 0)
            break;
        *v = (uint64_t)i32;
        return 0;
    case ENG_GGUF_I64:
        memcpy(&i64, kv->val, 8);
        if (i64 < 0)
            break;
        *v = (uint64_t)i64;
        return 0;
    default: break;
    }
    return eng_fail(err, ENG_EFORMAT, "GGUF key '%s' is not a non-negative integer", key);
}

int eng_gguf_get_f32(const struct eng_gguf *g, const char *key, float *v, char *err)
{
    const struct eng_gguf_kv *kv = eng_gguf_kv(g, key);
    double d;
    if (!kv)
        return eng_fail(err, ENG_EMISSING, "GGUF key '%s' is missing", key);
    if (kv->type == ENG_GGUF_F32) {
        memcpy(v, kv->val, 4);
        return 0;
    }
    if (kv->type == ENG_GGUF_F64) {
        memcpy(&d, kv->val, 8);
        *v = (float)d;
        return 0;
    }
    return eng_fail(err, ENG_EFORMAT, "GGUF key '%s' is not a float", key);
}

int eng_gguf_get_bool(const struct eng_gguf *g, const char *key, int *v, char *err)
{
    const struct eng_gguf_kv *kv = eng_gguf_kv(g, key);
    if (!kv)
        return eng_fail(err, ENG_EMISSING, "GGUF key '%s' is missing", key);
    if (kv->type != ENG_GGUF_BOOL)
        return eng_fail(err, ENG_EFORMAT, "GGUF key '%s' is not a bool", key);
    *v = kv->val[0] != 0;
    return 0;
}

int eng_gguf_get_str(const struct eng_gguf *g, const char *key, char **v, char *err)
{
    const struct eng_gguf_kv *kv = eng_gguf_kv(g, key);
    uint64_t n;
    *v = NULL;
    if (!kv)
        return eng_fail(err, ENG_EMISSING, "GGUF key '%s' is missing", key);
    if (kv->type != ENG_GGUF_STRING)
        return eng_fail(err, ENG_EFORMAT, "GGUF key '%s' is not a string", key);
    memcpy(&n, kv->val, 8);
    *v = strndup((const char *)kv->val + 8, n);
    return *v ? 0 : eng_fail(err, ENG_ENOMEM, "out of memory");
}

int eng_gguf_arr_str(const struct eng_gguf_kv *kv, uint64_t i, struct eng_gguf_str *s)
{
    if (kv->type != ENG_GGUF_ARRAY || kv->atype != ENG_GGUF_STRING || i >= kv->count)
        return ENG_EINVAL;
    const unsigned char *p = kv->val; /* validated at open */
    for (uint64_t k = 0;; k++) {
        memcpy(&s->n, p, 8);
        s->p = (const char *)p + 8;
        if (k == i)
            return 0;
        p += 8 + s->n;
    }
}

/* ------------------------------------------------------------------------------- writer */

struct wtensor {
    char *name;
    uint32_t type, n_dims;
    uint64_t ne[4];
    const void *data;
    uint64_t nbytes;
};

struct eng_gguf_writer {
    unsigned char *kv; /* serialised key/values */
    size_t n, cap;
    uint64_t nkv;
    struct wtensor *t;
    size_t nt, tcap;
    int oom;
};

int eng_gguf_writer_create(struct eng_gguf_writer **out)
{
    *out = calloc(1, sizeof(**out));
    return *out ? 0 : ENG_ENOMEM;
}

void eng_gguf_writer_free(struct eng_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nt; i++)
        free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w);
}

static void wb(struct eng_gguf_writer *w, const void *p, size_t n)
{
    if (w->oom)
        return;
    if (w->n + n > w->cap) {
        size_t nc = w->cap ? w->cap : 4096;
        while (nc < w->n + n)
            nc *= 2;
        unsigned char *q = realloc(w->kv, nc);
        if (!q) {
            w->oom = 1;
            return;
        }
        w->kv = q;
        w->cap = nc;
    }
    memcpy(w->kv + w->n, p, n);
    w->n += n;
}

static void wstr(struct eng_gguf_writer *w, const char *s)
{
    uint64_t n = strlen(s);
    wb(w, &n, 8);
    wb(w, s, n);
}

static void wkey(struct eng_gguf_writer *w, const char *key, uint32_t type)
{
    wstr(w, key);
    wb(w, &type, 4);
    w->nkv++;
}

int eng_gguf_w_str(struct eng_gguf_writer *w, const char *key, const char *val)
{
    wkey(w, key, ENG_GGUF_STRING);
    wstr(w, val);
    return w->oom ? ENG_ENOMEM : 0;
}

int eng_gguf_w_u32(struct eng_gguf_writer *w, const char *key, uint32_t val)
{
    wkey(w, key, ENG_GGUF_U32);
    wb(w, &val, 4);
    return w->oom ? ENG_ENOMEM : 0;
}

int eng_gguf_w_u64(struct eng_gguf_writer *w, const char *key, uint64_t val)
{
    wkey(w, key, ENG_GGUF_U64);
    wb(w, &val, 8);
    return w->oom ? ENG_ENOMEM : 0;
}

int eng_gguf_w_f32(struct eng_gguf_writer *w, const char *key, float val)
{
    wkey(w, key, ENG_GGUF_F32);
    wb(w, &val, 4);
    return w->oom ? ENG_ENOMEM : 0;
}

int eng_gguf_w_bool(struct eng_gguf_writer *w, const char *key, int val)
{
    uint8_t b = val ? 1 : 0;
    wkey(w, key, ENG_GGUF_BOOL);
    wb(w, &b, 1);
    return w->oom ? ENG_ENOMEM : 0;
}

int eng_gguf_w_arr_str(struct eng_gguf_writer *w, const char *key, const char *const *v, uint64_t n)
{
    uint32_t at = ENG_GGUF_STRING;
    wkey(w, key, ENG_GGUF_ARRAY);
    wb(w, &at, 4);
    wb(w, &n, 8);
    for (uint64_t i = 0; i < n; i++)
        wstr(w, v[i] ? v[i] : "");
    return w->oom ? ENG_ENOMEM : 0;
}

int eng_gguf_w_arr_i32(struct eng_gguf_writer *w, const char *key, const int32_t *v, uint64_t n)
{
    uint32_t at = ENG_GGUF_I32;
    wkey(w, key, ENG_GGUF_ARRAY);
    wb(w, &at, 4);
    wb(w, &n, 8);
    wb(w, v, 4 * n);
    return w->oom ? ENG_ENOMEM : 0;
}

int eng_gguf_w_tensor(struct eng_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, const void *data, uint64_t nbytes)
{
    if (n_dims < 1 || n_dims > 4)
        return ENG_EINVAL;
    if (w->nt == w->tcap) {
        size_t nc = w->tcap ? 2 * w->tcap : 64;
        struct wtensor *t = realloc(w->t, nc * sizeof(*t));
        if (!t)
            return ENG_ENOMEM;
        w->t = t;
        w->tcap = nc;
    }
    struct wtensor *t = &w->t[w->nt];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    if (!t->name)
        return ENG_ENOMEM;
    t->type = type;
    t->n_dims = n_dims;
    memcpy(t->ne, ne, n_dims * sizeof(*ne));
    t->data = data;
    t->nbytes = nbytes;
    w->nt++;
    return 0;
}

#define W_ALIGN 32

int eng_gguf_writer_write(struct eng_gguf_writer *w, const char *path, char *err)
{
    char tmp[4200];
    static const unsigned char zeros[W_ALIGN];
    if (w->oom)
        return eng_fail(err, ENG_ENOMEM, "out of memory building '%s'", path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return eng_fail(err, ENG_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    uint32_t magic = GGUF_MAGIC, version = 3;
    uint64_t nt = w->nt, nkv = w->nkv, off = 0;
    size_t pos = 0;
    int ok = fwrite(&magic, 4, 1, f) == 1 && fwrite(&version, 4, 1, f) == 1 &&
             fwrite(&nt, 8, 1, f) == 1 && fwrite(&nkv, 8, 1, f) == 1 &&
             fwrite(w->kv, 1, w->n, f) == w->n;
    pos = 24 + w->n;
    for (size_t i = 0; ok && i < w->nt; i++) {
        const struct wtensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        ok = fwrite(&nl, 8, 1, f) == 1 && fwrite(t->name, 1, nl, f) == nl &&
             fwrite(&t->n_dims, 4, 1, f) == 1 && fwrite(t->ne, 8, t->n_dims, f) == t->n_dims &&
             fwrite(&t->type, 4, 1, f) == 1 && fwrite(&off, 8, 1, f) == 1;
        pos += 8 + nl + 4 + 8 * t->n_dims + 4 + 8;
        off += (t->nbytes + W_ALIGN - 1) / W_ALIGN * W_ALIGN;
    }
    size_t pad = (W_ALIGN - pos % W_ALIGN) % W_ALIGN;
    ok = ok && fwrite(zeros, 1, pad, f) == pad;
    for (size_t i = 0; ok && i < w->nt; i++) {
        const struct wtensor *t = &w->t[i];
        /* pad to the next tensor; none after the last, so the file ends with its data */
        size_t tp = i + 1 < w->nt ? (W_ALIGN - t->nbytes % W_ALIGN) % W_ALIGN : 0;
        ok = (t->nbytes == 0 || fwrite(t->data, 1, t->nbytes, f) == t->nbytes) &&
             fwrite(zeros, 1, tp, f) == tp;
    }
    if (fclose(f) != 0)
        ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return eng_fail(err, ENG_EIO, "cannot write '%s': %s", path, strerror(e));
    }
    return 0;
}
