#!/usr/bin/env python3
"""Expected chat-template renderings for tests/test-jinja.c, made by transformers.

    python3 tools/make_chat_fixtures.py TEMPLATE_DIR OUT.json [--engine transformers|jinja2]

For every real chat template in TEMPLATE_DIR (tests/fixtures/chat/*.jinja) and every message list
below, the prompt is rendered by transformers' own `apply_chat_template(tokenize=False)` on a
PreTrainedTokenizerFast built from a tiny word-level tokenizer with the template and the model's
special tokens set; a template that raises (raise_exception, bad input) records the error instead.
Then small feature templates (filters, tests, loops, macros, slicing, tojson) are rendered the same
way, so every construct the C engine claims is checked against transformers' Jinja environment
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson,
raise_exception and strftime_now). Dates are passed as `date_string` so the output does not depend
on the day it runs.

Each case in OUT.json: {"name", "template" (file name or the snippet's text), "context" (what the C
test passes to the template: messages, tools, documents, add_generation_prompt, the special tokens
and the chat_template_kwargs), "expected" or "error"}.

`--engine jinja2` renders with a local jinja2 configured like transformers, only to debug this
script where transformers is not installed; committed fixtures come from `--engine transformers`
(the default), and the file records which engine and versions made it.
"""
import json
import os
import sys

SPECIAL = {
    "qwen3.jinja": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "qwen2.5.jinja": {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
    "chatml-smollm2.jinja": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
    "llama3.1.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "llama3.2.jinja": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Current time",
                                          "parameters": {"type": "object", "properties": {}}}}


def call(name, args, cid="call_1"):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}


SYS = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
U1 = {"role": "user", "content": "What is 2+2?"}
A1 = {"role": "assistant", "content": "4"}
U2 = {"role": "user", "content": "And times 3?"}
UNI = {"role": "user",
       "content": "Grüße aus Zürich — 你好，世界 🌍! \"quotes\" and 'apostrophes' \\ back\ttab"}
CONVS = {
    "single": [U1],
    "system": [SYS, U1],
    "multi": [SYS, U1, A1, U2],
    "multi_nosys": [U1, A1, U2],
    "unicode": [SYS, UNI, {"role": "assistant", "content": "Hallo! 👋 ¿Qué tal?"}, U2],
    "whitespace": [{"role": "system", "content": "  padded system \n"},
                   {"role": "user", "content": "\n  padded user  \n"}],
    "tool_call": [SYS, {"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": "",
                   "tool_calls": [call("get_weather", {"city": "Paris", "unit": "celsius"})]},
                  {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21.5}"}],
    "tool_calls_two": [{"role": "user", "content": "Weather in Paris and Rome?"},
                       {"role": "assistant", "content": "Checking both.",
                        "tool_calls": [call("get_weather", {"city": "Paris"}),
                                       call("get_weather", {"city": "Rome", "days": 2}, "call_2")]},
                       {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                       {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
                       {"role": "assistant", "content": "Paris is sunny, Rome has rain."},
                       {"role": "user", "content": "Thanks"}],
    "tool_call_string_args": [{"role": "user", "content": "Time?"},
                              {"role": "assistant", "content": None,
                               "tool_calls": [call("get_time", "{}")]},
                              {"role": "tool", "content": "12:00"}],
    "reasoning": [SYS, U1,
                  {"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4."},
                  U2,
                  {"role": "assistant", "content": "12",
                   "reasoning_content": "\nThe last answer was 4; 4*3=12.\n"}],
    "think_in_content": [U1, {"role": "assistant",
                              "content": "<think>\nadd them\n</think>\n\n4"}, U2],
}
# (template, conversation, tools, add_generation_prompt, chat_template_kwargs)
PLAN = []
for t in SPECIAL:
    for conv in ("single", "system", "multi", "multi_nosys", "unicode", "whitespace"):
        for agp in (True, False):
            PLAN.append((t, conv, None, agp, {}))
    for conv in ("tool_call", "tool_calls_two", "tool_call_string_args"):
        if t == "chatml-smollm2.jinja":
            continue
        PLAN.append((t, conv, [WEATHER, TIME], True, {}))
for conv in ("single", "multi", "reasoning", "think_in_content", "tool_call"):
    for think in (True, False):
        PLAN.append(("qwen3.jinja", conv, [WEATHER] if conv == "tool_call" else None, True,
                     {"enable_thinking": think}))
PLAN.append(("qwen3.jinja", "reasoning", None, False, {}))
for t in ("llama3.1.jinja", "llama3.2.jinja"):
    PLAN.append((t, "system", None, True, {"date_string": "02 Dec 2026"}))
    PLAN.append((t, "tool_call", [WEATHER], True,
                 {"date_string": "02 Dec 2026", "tools_in_user_message": False}))
    PLAN.append((t, "multi", [WEATHER], True, {"date_string": "02 Dec 2026"}))
PLAN.append(("llama3.1.jinja", "tool_call", None, True,
             {"date_string": "02 Dec 2026", "builtin_tools": ["brave_search", "code_interpreter",
                                                               "wolfram_alpha"]}))

# Feature snippets: (name, template, extra context). Each sees `messages` = CONVS["multi"] too.
DATA = {"items": [{"name": "b", "n": 2, "ok": True}, {"name": "a", "n": 1, "ok": False},
                  {"name": "c", "n": 3, "ok": True}],
        "d": {"z": 1, "a": [1, 2.5, "x", None, True], "m": {"k": "v"}},
        "s": "  Hello, World  ", "nums": [3, 1, 2, 3, 1], "f": 2.675, "neg": -7, "e": "",
        "u": "ünïcödé ✓"}
FEATURES = [
    ("text_only", "plain text\nwith lines\n", {}),
    ("comment", "a{# hidden #}b{#- trim -#} c\n{# line #}\nd", {}),
    ("ws_control", "x  {{- 1 -}}  y\n  {%- if true -%}  z  {%- endif -%}\n w", {}),
    ("trim_lstrip", "<ul>\n    {% for i in nums %}\n    <li>{{ i }}</li>\n    {% endfor %}\n</ul>\n",
     DATA),
    ("lstrip_plus", "a\n    {%+ if true %}b{% endif %}\n", {}),
    ("raw_newline_after_expr", "{{ 'x' }}\n{{ 'y' }}\n", {}),
    ("if_elif", "{% for n in nums %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many"
     "{% endif %},{% endfor %}", DATA),
    ("loop_vars", "{% for x in items %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/"
     "{{ loop.revindex0 }}/{{ loop.length }}/{{ loop.first }}/{{ loop.last }};{% endfor %}", DATA),
    ("loop_prev_next_cycle", "{% for x in nums %}{{ loop.previtem }}>{{ x }}>{{ loop.nextitem }}"
     " {{ loop.cycle('odd','even') }}|{% endfor %}", DATA),
    ("for_else", "{% for x in [] %}{{ x }}{% else %}empty{% endfor %}|"
     "{% for x in nums if x > 2 %}{{ x }}{% endfor %}", DATA),
    ("for_dict", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}"
     "{% for k in d %}{{ k }}{% endfor %}", DATA),
    ("break_continue", "{% for x in nums %}{% if x == 2 %}{% continue %}{% endif %}"
     "{% if loop.index > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", DATA),
    ("set_scope", "{% set a = 1 %}{% for x in nums %}{% set a = a + x %}{% endfor %}{{ a }}", DATA),
    ("namespace", "{% set ns = namespace(total=0, names=[]) %}{% for it in items %}"
     "{% set ns.total = ns.total + it.n %}{% endfor %}{{ ns.total }} {{ ns.names }}", DATA),
    ("set_block", "{% set body %}inner {{ 1 + 2 }}{% endset %}[{{ body }}]", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
     "{{ greet('Ann') }} {{ greet('Bob', '?') }} {{ greet(name='Cy', punct='.') }}", {}),
    ("macro_call", "{% macro box() %}[{{ caller() }}]{% endmacro %}"
     "{% call box() %}inside{% endcall %}", {}),
    ("filters_str", "{{ s|trim }}|{{ s|upper }}|{{ s|lower }}|{{ s|length }}|"
     "{{ s|replace('l', 'L') }}|{{ 'hello world'|capitalize }}|{{ 'a b'|title }}|{{ u|upper }}",
     DATA),
    ("filters_list", "{{ nums|join(',') }}|{{ nums|first }}|{{ nums|last }}|{{ nums|length }}|"
     "{{ nums|unique|list }}|{{ nums|sort }}|{{ nums|sum }}|{{ nums|min }}|{{ nums|max }}|"
     "{{ nums|reverse|list }}", DATA),
    ("filters_attr", "{{ items|map(attribute='name')|join('+') }}|"
     "{{ items|selectattr('ok')|map(attribute='name')|list }}|"
     "{{ items|rejectattr('ok')|map(attribute='n')|list }}|"
     "{{ items|selectattr('n', 'equalto', 3)|map(attribute='name')|first }}|"
     "{{ items|sort(attribute='name')|map(attribute='name')|join }}", DATA),
    ("filters_select", "{{ nums|select('odd')|list }}|{{ nums|reject('equalto', 3)|list }}|"
     "{{ ['a','code_interpreter','b']|reject('equalto','code_interpreter')|join(', ') }}", DATA),
    ("filters_default", "{{ missing|default('dflt') }}|{{ e|default('x') }}|"
     "{{ e|default('x', true) }}|{{ none|default('n') }}", DATA),
    ("filters_dict", "{{ d|dictsort }}|{{ d|items|list }}|{{ d|length }}|{{ d.m|tojson }}", DATA),
    ("filters_num", "{{ f|round }}|{{ f|round(2) }}|{{ f|round(1, 'floor') }}|{{ '42'|int }}|"
     "{{ '3.5'|float }}|{{ 7|float }}|{{ neg|abs }}|{{ 'x'|int }}|{{ 3.9|int }}", DATA),
    ("filters_string", "{{ 5|string + 'a' }}|{{ [1,'a']|string }}|{{ d.m|string }}|"
     "{{ none|string }}|{{ true|string }}", DATA),
    ("filter_indent", "{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(4, true) }}|"
     "{{ 'x\ny'|indent('> ') }}", {}),
    ("tojson", "{{ d|tojson }}\n{{ d|tojson(indent=2) }}\n{{ items[0]|tojson(indent=4) }}\n"
     "{{ u|tojson }}\n{{ '<a href=\"x\">&\\'</a>'|tojson }}\n{{ [1.0, 0.1, 1e20, 1.5e-7, -0.0]|tojson }}"
     "\n{{ {}|tojson }} {{ []|tojson(indent=2) }} {{ none|tojson }}", DATA),
    ("tojson_separators", "{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(sort_keys=true) }}",
     DATA),
    ("tests", "{{ missing is defined }}{{ missing is undefined }}{{ none is none }}"
     "{{ s is string }}{{ d is mapping }}{{ nums is iterable }}{{ s is iterable }}"
     "{{ nums is sequence }}{{ 1 is number }}{{ 1.5 is number }}{{ true is boolean }}"
     "{{ true is true }}{{ false is false }}{{ 0 is false }}{{ 2 is in nums }}"
     "{{ 3 is equalto 3 }}{{ 3 is eq 3 }}{{ 4 is even }}{{ 4 is odd }}"
     "{{ d is not string }}{{ 5 is divisibleby 5 }}{{ items[0].missing is defined }}", DATA),
    ("str_methods", "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'a,b,,c'.split(',') }}|"
     "{{ 'a b  c'.split() }}|{{ 'xax'.strip('x') }}|{{ 'abc'.startswith('ab') }}|"
     "{{ 'abc'.endswith('bc') }}|{{ 'aXa'.replace('a', 'b') }}|{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}"
     "|{{ 'hello world'.title() }}|{{ 'hello'.capitalize() }}|{{ '{} and {}'.format(1, 'x') }}|"
     "{{ 'a-b-c'.split('-', 1) }}|{{ 'abc'.find('c') }}|{{ 'x=1'.rsplit('=', 1)[0] }}|"
     "{{ 'a' * 3 }}", DATA),
    ("dict_methods", "{{ d.get('z') }}|{{ d.get('q') }}|{{ d.get('q', 'dq') }}|{{ d.keys()|list }}|"
     "{{ d.values()|list|length }}|{{ d['m']['k'] }}|{{ d.m.k }}|{{ 'z' in d }}", DATA),
    ("slicing", "{{ nums[1:3] }}{{ nums[::-1] }}{{ nums[-2:] }}{{ nums[:-1] }}{{ nums[::2] }}"
     "{{ 'abcdef'[1:4] }}{{ 'abcdef'[::-1] }}{{ nums[-1] }}{{ 'abc'[0] }}{{ nums[10:] }}", DATA),
    ("operators", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} "
     "{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ 'a' ~ 1 ~ none }} {{ 1 < 2 <= 2 }} "
     "{{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ not true or false and true }} {{ 2 in nums }} "
     "{{ 'x' not in s }} {{ 'ell' in 'hello' }} {{ [1] + [2, 3] }} {{ 0.1 + 0.2 }} {{ 4 / 2 }} "
     "{{ -neg }} {{ 10 - 2.5 }} {{ 3 * 1.5 }}", DATA),
    ("ternary", "{{ 'yes' if nums else 'no' }}|{{ 'yes' if e else 'no' }}|"
     "{{ 'only-if' if false }}|", DATA),
    ("literals", "{{ [1, 'two', 3.0, none, true, [4]] }}|{{ {'a': 1, 'b': [2]} }}|{{ (1, 2) }}|"
     "{{ \"dq\" }}|{{ 'esc\\'aped\\n' }}|{{ 1_000 }}|{{ True }}{{ False }}{{ None }}", {}),
    ("undefined_attr_error", "{{ missing.attr }}", {}),
    ("undefined", "[{{ missing }}][{{ d.nope }}][{{ d.nope is defined }}]"
     "[{{ 'y' if missing else 'n' }}][{{ missing|length if missing is defined else 0 }}]", DATA),
    ("raise", "{% if nums|length > 2 %}{{ raise_exception('too many: ' ~ nums|length) }}"
     "{% endif %}", DATA),
    ("strftime_defined", "{{ strftime_now is defined }}", {}),
    ("messages_loop", "{% for m in messages %}{{ m.role[0]|upper }}:{{ m['content'] }}"
     "{% if not loop.last %}\n{% endif %}{% endfor %}", {}),
    ("output_types", "{{ 1 }} {{ 1.0 }} {{ 1.5 }} {{ 100000000000000000000.0 }} {{ 1e-5 }} "
     "{{ true }} {{ none }} {{ [none, false] }} {{ {'k': 'v\\'s'} }} {{ 'it\\'s'|list }}", {}),
    ("is_none_chain", "{% if d.q is not defined and d.z is defined %}ok{% endif %}", DATA),
    ("filter_block", "{% filter upper %}shout {{ s|trim }}{% endfilter %}", DATA),
    ("call_kwargs_namespace", "{% set ns = namespace() %}{% set ns.x = 3 %}{{ ns.x }}", {}),
    ("nested_loops", "{% for i in [1, 2] %}{% for j in 'ab' %}{{ i }}{{ j }}{{ loop.index }}"
     "{% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("string_concat_mixed", "{{ 'n=' ~ 3 }}{{ 'a' + 'b' }}{{ [1] * 2 }}", {}),
    ("dict_loop_sorted", "{% for k, v in d|dictsort %}{{ k }}{% endfor %}"
     "{% for k, v in d.items()|sort %}{{ k }}{% endfor %}", DATA),
    ("length_unicode", "{{ u|length }} {{ u[0] }} {{ u[::-1] }} {{ u|upper }}", DATA),
]


def make_tokenizer(template, special):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {"[UNK]": 0}
    for tok in special.values():
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, chat_template=template,
                                   unk_token="[UNK]", **special)


def render_transformers(template, special, messages, tools, agp, kwargs):
    tok = make_tokenizer(template, special)
    return tok.apply_chat_template(messages, tools=tools, add_generation_prompt=agp,
                                   tokenize=False, **kwargs)


def render_jinja2(template, special, messages, tools, agp, kwargs):
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: "unused"
    ctx = dict(special, **kwargs)
    return env.from_string(template).render(messages=messages, tools=tools, documents=None,
                                            add_generation_prompt=agp, **ctx)


def case(render, name, template, label, special, messages, tools, agp, kwargs):
    ctx = {"messages": messages, "tools": tools, "documents": None,
           "add_generation_prompt": agp}
    ctx.update(special)
    ctx.update(kwargs)
    out = {"name": name, "template": label, "context": ctx}
    try:
        out["expected"] = render(template, special, messages, tools, agp, kwargs)
    except Exception as e:  # the C engine must fail too; the message is for people
        out["error"] = "%s: %s" % (type(e).__name__, e)
    return out


def main():
    tdir, dst = sys.argv[1], sys.argv[2]
    engine = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--engine" else "transformers"
    render = render_transformers if engine == "transformers" else render_jinja2
    versions = {"engine": engine, "python": sys.version.split()[0]}
    for mod in ("transformers", "jinja2", "tokenizers"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            pass
    cases = []
    for t, conv, tools, agp, kw in PLAN:
        template = open(os.path.join(tdir, t), encoding="utf-8").read()
        name = "%s/%s%s%s" % (t[:-6], conv, "" if agp else "/noprompt",
                              "".join("/%s=%s" % (k, json.dumps(v)) for k, v in sorted(kw.items())))
        if tools:
            name += "/tools"
        cases.append(case(render, name, template, t, SPECIAL[t], CONVS[conv], tools, agp, kw))
    for name, template, extra in FEATURES:
        cases.append(case(render, "feature/" + name, template, template, {}, CONVS["multi"],
                          None, False, extra))
    with open(dst, "w", encoding="utf-8") as f:
        json.dump({"made_by": versions, "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum("error" in c for c in cases)
    print("%d cases (%d errors) -> %s %s" % (len(cases), n_err, dst, json.dumps(versions)))


if __name__ == "__main__":
    main()
