/*
 * train/ckpt.c — crash-safe checkpoints (ckpt.h): temp dir, fsync, rename, fsync parent.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/err.h"
#include "train/ckpt.h"

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_file(const char *path, const void *p, size_t n, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return eng_fail(err, ENG_EIO, "cannot create '%s': %s", path, strerror(errno));
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            return eng_fail(err, ENG_EIO, "cannot write '%s': %s", path, strerror(e));
        }
        c += w;
        n -= (size_t)w;
    }
    if (fsync(fd) || close(fd))
        return eng_fail(err, ENG_EIO, "cannot sync '%s': %s", path, strerror(errno));
    return 0;
}

static int read_exact(const char *path, void *p, size_t n, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return eng_fail(err, ENG_EIO, "cannot open '%s': %s", path, strerror(errno));
    size_t r = fread(p, 1, n, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (r != n || extra)
        return eng_fail(err, ENG_ESHAPE, "'%s' does not hold the %zu bytes the model needs", path,
                        n);
    return 0;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4096];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove the oldest ckpt-* beyond keep (names sort by stage then zero-padded step). */
static void prune(const char *cdir, int keep)
{
    DIR *d = opendir(cdir);
    struct dirent *e;
    char *names[4096];
    int n = 0;
    if (!d)
        return;
    while ((e = readdir(d)) && n < 4096)
        if (!strncmp(e->d_name, "ckpt-", 5))
            names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof(char *), cmp_str);
    for (int i = 0; i < n; i++) {
        if (names[i] && i < n - keep) {
            char p[4096 + 512];
            snprintf(p, sizeof(p), "%s/%s", cdir, names[i]);
            rm_tree(p);
        }
        free(names[i]);
    }
}

int trn_ckpt_save(const char *root, int stage, long step, json_t *state, const float *params,
                  const float *m, const float *v, size_t n, int keep, char *path, char *err)
{
    char cdir[3900], tmp[4096], f[4200];
    int rc;
    snprintf(cdir, sizeof(cdir), "%s/checkpoints", root);
    if (mkdir(cdir, 0755) && errno != EEXIST)
        return eng_fail(err, ENG_EIO, "cannot create '%s': %s", cdir, strerror(errno));
    snprintf(path, 4096, "%s/ckpt-%d-%08ld", cdir, stage, step);
    snprintf(tmp, sizeof(tmp), "%s/.tmp-ckpt-%d-%08ld", cdir, stage, step);
    rm_tree(tmp);
    if (mkdir(tmp, 0755))
        return eng_fail(err, ENG_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    char *js = json_dumps(state, JSON_INDENT(1) | JSON_SORT_KEYS);
    if (!js)
        return eng_fail(err, ENG_ENOMEM, "out of memory");
    snprintf(f, sizeof(f), "%s/state.json", tmp);
    rc = write_file(f, js, strlen(js), err);
    free(js);
    snprintf(f, sizeof(f), "%s/params.bin", tmp);
    if (!rc)
        rc = write_file(f, params, n * sizeof(float), err);
    snprintf(f, sizeof(f), "%s/adam_m.bin", tmp);
    if (!rc)
        rc = write_file(f, m, n * sizeof(float), err);
    snprintf(f, sizeof(f), "%s/adam_v.bin", tmp);
    if (!rc)
        rc = write_file(f, v, n * sizeof(float), err);
    if (rc) {
        rm_tree(tmp);
        return rc;
    }
    fsync_path(tmp);
    rm_tree(path); /* a checkpoint of the same step from an earlier, interrupted run */
    if (rename(tmp, path)) {
        rc = eng_fail(err, ENG_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
        rm_tree(tmp);
        return rc;
    }
    fsync_path(cdir);
    /* LATEST -> name */
    const char *base = strrchr(path, '/') + 1;
    char lt[4200], ltmp[4200];
    snprintf(lt, sizeof(lt), "%s/LATEST", cdir);
    snprintf(ltmp, sizeof(ltmp), "%s/.LATEST.tmp", cdir);
    if ((rc = write_file(ltmp, base, strlen(base), err)))
        return rc;
    if (rename(ltmp, lt))
        return eng_fail(err, ENG_EIO, "cannot rename '%s': %s", ltmp, strerror(errno));
    fsync_path(cdir);
    prune(cdir, keep < 1 ? 1 : keep);
    return 0;
}

static int latest_dir(const char *root, char *dir, char *err)
{
    char lt[4096], name[256] = "";
    snprintf(lt, sizeof(lt), "%s/checkpoints/LATEST", root);
    FILE *f = fopen(lt, "r");
    if (!f)
        return eng_fail(err, ENG_EMISSING, "no checkpoint in '%s/checkpoints'", root);
    size_t r = fread(name, 1, sizeof(name) - 1, f);
    fclose(f);
    name[r] = 0;
    if (!r || strchr(name, '/') || strncmp(name, "ckpt-", 5))
        return eng_fail(err, ENG_EFORMAT, "'%s' does not name a checkpoint", lt);
    snprintf(dir, 4096, "%s/checkpoints/%s", root, name);
    return 0;
}

int trn_ckpt_latest_state(const char *root, json_t **state, char *err)
{
    char dir[4096], f[4200];
    json_error_t je;
    int rc = latest_dir(root, dir, err);
    *state = NULL;
    if (rc)
        return rc;
    snprintf(f, sizeof(f), "%s/state.json", dir);
    *state = json_load_file(f, 0, &je);
    if (!*state)
        return eng_fail(err, ENG_EFORMAT, "%s: %s", f, je.text);
    return 0;
}

int trn_ckpt_load_latest(const char *root, json_t **state, float *params, float *m, float *v,
                         size_t n, char *path, char *err)
{
    char f[4200];
    int rc = latest_dir(root, path, err);
    if (rc)
        return rc;
    if ((rc = trn_ckpt_latest_state(root, state, err)))
        return rc;
    snprintf(f, sizeof(f), "%s/params.bin", path);
    if (!rc)
        rc = read_exact(f, params, n * sizeof(float), err);
    snprintf(f, sizeof(f), "%s/adam_m.bin", path);
    if (!rc)
        rc = read_exact(f, m, n * sizeof(float), err);
    snprintf(f, sizeof(f), "%s/adam_v.bin", path);
    if (!rc)
        rc = read_exact(f, v, n * sizeof(float), err);
    if (rc) {
        json_decref(*state);
        *state = NULL;
    }
    return rc;
}
