/*
 * tests/fault/fault-load.c — allocation-failure sweep over model loading (run under
 * LD_PRELOAD=failmalloc.so; see tests/fault/test-fault.sh).
 *
 *   fault-load served|hf|tok PATH
 *
 * For N = 1, 2, ...: arm the hook to fail the Nth allocation, load PATH (eng_served_load: a
 * student GGUF as the daemon loads it; eng_model_load_hf: an HF directory; eng_tok_load_json),
 * disarm, free what loaded. Stops at the first N the load finishes without reaching (every
 * allocation of a load has then failed once). Prints one line:
 *   sweep KIND allocations=A failed_cleanly=F recovered=R silent=S
 * F: loads that returned an error with a message; R: loads that succeeded although an
 * allocation failed (a fallback path); S: errors without a message (a bug). Leaks on the error
 * paths show up as LeakSanitizer's report at exit in the sanitizer build; crashes end the run.
 */
#include "config.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/model.h"
#include "engine/registry.h"
#include "engine/tokenizer.h"

int main(int argc, char **argv)
{
    void (*arm)(long, int) = (void (*)(long, int))dlsym(RTLD_DEFAULT, "bd_failmalloc_arm");
    long (*fired)(void) = (long (*)(void))dlsym(RTLD_DEFAULT, "bd_failmalloc_fired");
    if (argc != 3 || !arm || !fired) {
        fprintf(stderr, "usage: LD_PRELOAD=failmalloc.so fault-load served|hf|tok PATH\n");
        return 2;
    }
    const char *kind = argv[1], *path = argv[2];
    long n, clean = 0, recovered = 0, silent = 0;
    for (n = 1; n < 1000000; n++) {
        char err[ENG_ERR_LEN] = "";
        int rc;
        arm(n, 0);
        if (!strcmp(kind, "served")) {
            struct eng_served *s = NULL;
            rc = eng_served_load(path, "m", 64, &s, err);
            arm(0, 0);
            if (rc == 0) {
                /* Use it: a context from the pool and one forward step. */
                struct eng_ctx *c = eng_served_ctx_get(s, 8);
                if (c) {
                    int32_t ids[2] = {1, 2};
                    eng_ctx_forward(c, ids, 2, NULL, 0);
                    eng_served_ctx_put(s, c);
                }
                eng_served_unref(s);
            }
        } else if (!strcmp(kind, "hf")) {
            struct eng_model *m = NULL;
            rc = eng_model_load_hf(path, &m, err);
            arm(0, 0);
            eng_model_free(m);
        } else {
            struct eng_tok *t = NULL;
            rc = eng_tok_load_json(path, &t, err);
            arm(0, 0);
            eng_tok_free(t);
        }
        long f = fired();
        if (f == 0) {
            if (rc) {
                fprintf(stderr, "fault-load: the load fails without any injected fault: %s\n", err);
                return 1;
            }
            break;
        }
        if (rc == 0)
            recovered++;
        else if (err[0])
            clean++;
        else {
            silent++;
            fprintf(stderr, "fault-load: allocation %ld failed: status %d without a message\n", n,
                    rc);
        }
    }
    printf("sweep %s allocations=%ld failed_cleanly=%ld recovered=%ld silent=%ld\n", kind, n - 1,
           clean, recovered, silent);
    return silent ? 1 : 0;
}
