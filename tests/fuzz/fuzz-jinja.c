/*
 * tests/fuzz/fuzz-jinja.c — libFuzzer target: the input is a chat template. Parsing must fail
 * with a message or give a template that renders a fixed conversation (system, user, assistant
 * with reasoning and a tool call, tool answer; tools; add_generation_prompt) to a string or
 * fails with a message, within small output and memory limits, without crashing or leaking.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "jinja/jinja.h"
#include "tests/fuzz/fuzz_util.h"

static const char ctx_json[] =
    "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Gr\\u00fc\\u00dfe \\ud83c\\udf0d <think>x</think>\"},"
    "{\"role\":\"assistant\",\"content\":\"4\",\"reasoning_content\":\"2+2\","
    "\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
    "\"arguments\":{\"a\":1,\"b\":[1.5,null,true]}}}]},"
    "{\"role\":\"tool\",\"content\":\"ok\"}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\","
    "\"enable_thinking\":false,\"nums\":[3,1,2],\"s\":\"  Hi  \"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *ctx;
    char err[JINJA_ERR_LEN];
    struct jinja_tpl *tpl = NULL;
    if (!ctx && !(ctx = json_loads(ctx_json, 0, NULL)))
        abort();
    err[0] = 0;
    if (jinja_parse((const char *)data, size, &tpl, err)) {
        if (!err[0])
            __builtin_trap();
        return 0;
    }
    struct jinja_opts o = {.now = 1796212800, .max_output = 1u << 20, .max_memory = 64u << 20};
    char *out = NULL;
    size_t len = 0;
    err[0] = 0;
    if (jinja_render(tpl, ctx, &o, &out, &len, err) == 0) {
        if (!out || strlen(out) > len)
            __builtin_trap();
        free(out);
    } else if (!err[0] || out) {
        __builtin_trap();
    }
    jinja_free(tpl);
    return 0;
}
