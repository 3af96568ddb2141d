/*
 * train/device.c — the --device / "device" strings of backend.h, shared by the CUDA backend
 * (cuda_model.c) and the build without CUDA (cuda_stub.c): "cpu", "cuda", "cuda:K",
 * "cuda:K,L,..." and "cuda:all" (every device trn_cuda_device_count sees).
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "train/backend.h"

int trn_cuda_parse_device(const char *s)
{
    if (!strcmp(s, "cpu"))
        return -1;
    if (!strcmp(s, "cuda"))
        return 0;
    if (!strncmp(s, "cuda:", 5) && s[5] >= '0' && s[5] <= '9') {
        char *e;
        long k = strtol(s + 5, &e, 10);
        return *e || k > 1024 ? -2 : (int)k;
    }
    return -2;
}

int trn_parse_device_ids(const char *p, int *devs, int max)
{
    int n = 0;
    while (*p) {
        char *e;
        if (!isdigit((unsigned char)*p))
            return -1;
        long k = strtol(p, &e, 10);
        if (k > 1024 || n >= max || (*e && *e != ',') || (*e == ',' && !e[1]))
            return -1;
        for (int i = 0; i < n; i++)
            if (devs[i] == (int)k)
                return -1;
        devs[n++] = (int)k;
        p = *e ? e + 1 : e;
    }
    return n ? n : -1;
}

int trn_cuda_parse_devices(const char *s, int *devs, int max)
{
    int n = 0;
    if (!strcmp(s, "cpu"))
        return 0;
    if (!strcmp(s, "cuda:all")) {
        int k = trn_cuda_device_count();
        for (n = 0; n < k && n < max; n++)
            devs[n] = n;
        return n ? n : -1;
    }
    if (!strncmp(s, "cuda:", 5) && strchr(s, ','))
        return trn_parse_device_ids(s + 5, devs, max);
    int d = trn_cuda_parse_device(s);
    if (d < -1)
        return -1;
    devs[0] = d;
    return 1;
}
