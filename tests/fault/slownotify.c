/*
 * tests/fault/slownotify.c — an LD_PRELOAD shim that makes every uv_async_send sleep
 * BD_NOTIFY_DELAY_US microseconds (default 3000) after it has sent.
 *
 * The engine workers hand a finished job to the loop thread with uv_async_send (through the
 * scheduler's notify). The sleep is the preemption a loaded machine may impose right there: the
 * loop thread drains and frees the job (and may drop its model's last reference) while the
 * worker has not returned yet, so a worker that still touches the job after finishing it reads
 * freed memory (ASan in the sanitizer build; MALLOC_PERTURB_'s poison in the normal one).
 * tests/fault/test-sched-race.sh runs the daemon under it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

int uv_async_send(uv_async_t *async)
{
    static int (*real)(uv_async_t *);
    if (!real)
        real = (int (*)(uv_async_t *))dlsym(RTLD_NEXT, "uv_async_send");
    int rc = real(async);
    const char *env = getenv("BD_NOTIFY_DELAY_US");
    usleep(env ? (useconds_t)atoi(env) : 3000);
    return rc;
}
