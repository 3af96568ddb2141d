/*
 * jobs/better.c — see better.h.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "jobs/better.h"

/* metrics[obj][key] as a number, or -1 when absent. */
static double figure(json_t *metrics, const char *obj, const char *key)
{
    json_t *v = json_object_get(json_object_get(metrics, obj), key);
    return json_is_number(v) ? json_number_value(v) : -1.0;
}

char *job_better_decide(const char *metrics, int *activate)
{
    json_t *m = metrics ? json_loads(metrics, 0, NULL) : NULL;
    json_t *base = json_object_get(m, "baseline");
    int cls = figure(m, "student_gguf", "accuracy") >= 0 || figure(m, "student", "accuracy") >= 0;
    const char *metric = cls ? "accuracy" : "rougeL";
    double stu = cls ? figure(m, "student_gguf", "accuracy") : figure(m, "student", "rougeL");
    double act = figure(m, "baseline", metric);
    const char *active_id = json_string_value(json_object_get(base, "id"));
    const char *err = json_string_value(json_object_get(base, "error"));
    char reason[512];
    if (cls && stu < 0)
        stu = figure(m, "student", "accuracy");
    *activate = 0;
    if (stu < 0) {
        snprintf(reason, sizeof(reason), "the student has no %s figure: kept the active model",
                 metric);
    } else if (!base) {
        *activate = 1;
        snprintf(reason, sizeof(reason), "no model was active for the task: nothing to beat");
    } else if (act < 0) {
        snprintf(reason, sizeof(reason),
                 "the active model '%s' could not be evaluated (%s): "
                 "kept it",
                 active_id ? active_id : "?", err ? err : "no figure");
    } else if (stu > act) {
        *activate = 1;
        snprintf(reason, sizeof(reason), "%s %.4f beats the active model's %.4f", metric, stu, act);
    } else {
        snprintf(reason, sizeof(reason),
                 "%s %.4f does not beat the active model's %.4f: kept "
                 "it",
                 metric, stu, act);
    }
    json_t *ev =
        json_pack("{s:s, s:s, s:b, s:s, s:o, s:o, s:s?, s:b, s:s}", "type", "activation", "policy",
                  "if_better", "activated", *activate, "metric", metric, "student",
                  stu >= 0 ? json_real(stu) : json_null(), "active",
                  act >= 0 ? json_real(act) : json_null(), "active_model", active_id,
                  "active_stored", json_is_true(json_object_get(base, "stored")), "reason", reason);
    char *text = ev ? json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(ev);
    json_decref(m);
    return text;
}
