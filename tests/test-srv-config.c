/*
 * tests/test-srv-config.c — config precedence (default < file < environment < flags), value
 * parsing, and the error messages for bad input; plus the error-type mapping of the API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "log/log.h"
#include "server/conf.h"
#include "tests/tap.h"

static int load(struct srv_config *c, int argc, char **argv, char **envp, char *err)
{
    srv_config_init(c);
    return srv_config_load(c, argc, argv, envp, err, 512);
}

int main(void)
{
    struct srv_config c;
    char err[512] = "";
    char path[] = "/tmp/bd-conf-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "{\"port\": 9001, \"host\": \"0.0.0.0\", \"max-body-size\": \"2M\", "
               "\"log-level\": \"debug\", \"idle-timeout-ms\": 1234}\n");
    fclose(f);

    /* Defaults. */
    char *a0[] = {"bitdistilld", NULL};
    TAP_OK(load(&c, 1, a0, NULL, err) == 0, "defaults load");
    TAP_OK(c.port == 8080 && !strcmp(c.host, "127.0.0.1") && c.max_body_size == 8u << 20 &&
               c.log_level == LOG_LEVEL_INFO && !strcmp(c.data_dir, "bitdistill-data"),
           "defaults: 127.0.0.1:8080, 8M bodies, info, data dir bitdistill-data");
    char *db = srv_config_db_path(&c);
    TAP_OK(!strcmp(db, "bitdistill-data/bitdistill.db"), "database defaults into the data dir");
    free(db);
    srv_config_release(&c);

    /* File over defaults. */
    char cfgarg[64];
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", path);
    char *a1[] = {"bitdistilld", cfgarg, NULL};
    TAP_OK(load(&c, 2, a1, NULL, err) == 0, "file loads (%s)", err);
    TAP_OK(c.port == 9001 && !strcmp(c.host, "0.0.0.0") && c.max_body_size == 2u << 20 &&
               c.log_level == LOG_LEVEL_DEBUG && c.idle_timeout_ms == 1234,
           "file values override defaults");
    srv_config_release(&c);

    /* Environment over file; BITDISTILL_CONFIG names the file. */
    char envcfg[64];
    snprintf(envcfg, sizeof(envcfg), "BITDISTILL_CONFIG=%s", path);
    char *env[] = {envcfg,
                   "BITDISTILL_PORT=9002",
                   "BITDISTILL_MAX_BODY_SIZE=512k",
                   "BITDISTILL_UNRELATED_THING=1",
                   "PATH=/bin",
                   NULL};
    TAP_OK(load(&c, 1, a0, env, err) == 0, "env loads (%s)", err);
    TAP_OK(c.port == 9002 && c.max_body_size == 512u << 10 && !strcmp(c.host, "0.0.0.0"),
           "environment overrides the file; file still applies to the rest");
    srv_config_release(&c);

    /* Flags over environment, both --k v and --k=v forms. */
    char *a2[] = {"bitdistilld", "--port", "9003", "--max-body-size=1G",
                  "--data-dir",  "/x/y",   NULL};
    TAP_OK(load(&c, 6, a2, env, err) == 0, "flags load (%s)", err);
    TAP_OK(c.port == 9003 && c.max_body_size == 1u << 30 && !strcmp(c.data_dir, "/x/y") &&
               c.idle_timeout_ms == 1234,
           "flags override environment and file");
    db = srv_config_db_path(&c);
    TAP_OK(!strcmp(db, "/x/y/bitdistill.db"), "database follows --data-dir");
    free(db);
    srv_config_release(&c);

    /* Errors name the problem. */
    char *b1[] = {"bitdistilld", "--port", "eighty", NULL};
    TAP_OK(load(&c, 3, b1, NULL, err) < 0 && strstr(err, "port") && strstr(err, "eighty"),
           "bad integer named: %s", err);
    srv_config_release(&c);
    char *b2[] = {"bitdistilld", "--bogus", "1", NULL};
    TAP_OK(load(&c, 3, b2, NULL, err) < 0 && strstr(err, "--bogus"), "unknown flag named: %s", err);
    srv_config_release(&c);
    char *b3[] = {"bitdistilld", "--port", NULL};
    TAP_OK(load(&c, 2, b3, NULL, err) < 0 && strstr(err, "needs a value"),
           "missing value named: %s", err);
    srv_config_release(&c);
    char *b4[] = {"bitdistilld", "--max-body-size", "12Q", NULL};
    TAP_OK(load(&c, 3, b4, NULL, err) < 0 && strstr(err, "not a size"), "bad size named: %s", err);
    srv_config_release(&c);
    char *b5[] = {"bitdistilld", "--tls-cert", "/c.pem", NULL};
    TAP_OK(load(&c, 3, b5, NULL, err) < 0 && strstr(err, "together"),
           "tls-cert without tls-key refused: %s", err);
    srv_config_release(&c);
    char *e1[] = {"BITDISTILL_LOG_LEVEL=loud", NULL};
    TAP_OK(load(&c, 1, a0, e1, err) < 0 && strstr(err, "BITDISTILL_LOG_LEVEL") &&
               strstr(err, "loud"),
           "bad environment value names the variable: %s", err);
    srv_config_release(&c);
    char *b6[] = {"bitdistilld", "--port", "70000", NULL};
    TAP_OK(load(&c, 3, b6, NULL, err) < 0 && strstr(err, "70000"), "port range checked: %s", err);
    srv_config_release(&c);

    f = fopen(path, "w");
    fprintf(f, "{\"prot\": 1}\n");
    fclose(f);
    TAP_OK(load(&c, 2, a1, NULL, err) < 0 && strstr(err, "unknown option 'prot'"),
           "unknown key in the file named: %s", err);
    srv_config_release(&c);
    f = fopen(path, "w");
    fprintf(f, "{\"port\": 1,,}\n");
    fclose(f);
    TAP_OK(load(&c, 2, a1, NULL, err) < 0 && strstr(err, path) && strstr(err, "line 1"),
           "malformed file named with its line: %s", err);
    srv_config_release(&c);
    char *b7[] = {"bitdistilld", "--config", "/nonexistent/bd.json", NULL};
    TAP_OK(load(&c, 3, b7, NULL, err) < 0 && strstr(err, "/nonexistent/bd.json"),
           "missing file named: %s", err);
    srv_config_release(&c);
    unlink(path);

    /* The error type of each status (OpenAI's names). */
    TAP_OK(!strcmp(api_error_type(400), "invalid_request_error") &&
               !strcmp(api_error_type(401), "authentication_error") &&
               !strcmp(api_error_type(403), "permission_error") &&
               !strcmp(api_error_type(404), "not_found_error") &&
               !strcmp(api_error_type(413), "invalid_request_error") &&
               !strcmp(api_error_type(429), "rate_limit_error") &&
               !strcmp(api_error_type(500), "server_error") &&
               !strcmp(api_error_type(503), "unavailable_error"),
           "error types follow the status");
    return tap_done();
}
