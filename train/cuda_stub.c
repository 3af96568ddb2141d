/*
 * train/cuda_stub.c — backend.h in a build without CUDA (configure found no nvcc): no device
 * is visible (the parsers in device.c still work) and every GPU call fails with
 * ENG_EUNSUPPORTED and a message.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "train/backend.h"

int trn_cuda_device_count(void)
{
    return 0;
}

#define NOCUDA(err)                                                                                \
    eng_fail((err), ENG_EUNSUPPORTED,                                                              \
             "this bitdistill was built without CUDA "                                             \
             "(configure --with-cuda)")

int trn_cuda_create(int dev, struct trn_model *student, struct trn_model *teacher, int bf16,
                    struct trn_cuda **out, char *err)
{
    (void)dev, (void)student, (void)teacher, (void)bf16;
    *out = NULL;
    return NOCUDA(err);
}

void trn_cuda_free(struct trn_cuda *g)
{
    (void)g;
}

int trn_cuda_step_losses(struct trn_cuda *g, const struct trn_batch *b,
                         const struct trn_loss_cfg *lc, int grad, float grad_scale,
                         struct trn_losses *out, char *err)
{
    (void)g, (void)b, (void)lc, (void)grad, (void)grad_scale;
    memset(out, 0, sizeof(*out));
    return NOCUDA(err);
}

void trn_cuda_zero_grad(struct trn_cuda *g)
{
    (void)g;
}

int trn_cuda_adamw_update(struct trn_cuda *g, long t, float lr, const struct trn_adamw_cfg *c,
                          double *gnorm, char *err)
{
    (void)g, (void)t, (void)lr, (void)c, (void)gnorm;
    return NOCUDA(err);
}

int trn_cuda_set_moments(struct trn_cuda *g, const float *m, const float *v, char *err)
{
    (void)g, (void)m, (void)v;
    return NOCUDA(err);
}

int trn_cuda_pull(struct trn_cuda *g, float *params, float *grads, float *m, float *v, char *err)
{
    (void)g, (void)params, (void)grads, (void)m, (void)v;
    return NOCUDA(err);
}

int trn_cuda_dp_create(const int *devs, int n, struct trn_model *student, struct trn_model *teacher,
                       int bf16, struct trn_dist *dist, struct trn_cuda_dp **out, char *err)
{
    (void)devs, (void)n, (void)student, (void)teacher, (void)bf16, (void)dist;
    *out = NULL;
    return NOCUDA(err);
}

void trn_cuda_dp_free(struct trn_cuda_dp *d)
{
    (void)d;
}
int trn_cuda_dp_size(const struct trn_cuda_dp *d)
{
    (void)d;
    return 0;
}
size_t trn_cuda_dp_mem_used(struct trn_cuda_dp *d)
{
    (void)d;
    return 0;
}
void trn_cuda_dp_profile(struct trn_cuda_dp *d, FILE *f)
{
    (void)d;
    (void)f;
}

int trn_cuda_dp_step_losses(struct trn_cuda_dp *d, const struct trn_batch *b,
                            const struct trn_loss_cfg *lc, float grad_scale, struct trn_losses *out,
                            char *err)
{
    (void)d, (void)b, (void)lc, (void)grad_scale;
    memset(out, 0, sizeof(*out));
    return NOCUDA(err);
}

void trn_cuda_dp_zero_grad(struct trn_cuda_dp *d)
{
    (void)d;
}

int trn_cuda_dp_adamw_update(struct trn_cuda_dp *d, long t, float lr, const struct trn_adamw_cfg *c,
                             double *gnorm, char *err)
{
    (void)d, (void)t, (void)lr, (void)c, (void)gnorm;
    return NOCUDA(err);
}

int trn_cuda_dp_set_moments(struct trn_cuda_dp *d, const float *m, const float *v, char *err)
{
    (void)d, (void)m, (void)v;
    return NOCUDA(err);
}

int trn_cuda_dp_pull(struct trn_cuda_dp *d, float *params, float *m, float *v, char *err)
{
    (void)d, (void)params, (void)m, (void)v;
    return NOCUDA(err);
}
