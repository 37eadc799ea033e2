"""Request parsing for ``specllama serve``: what is accepted, ignored, refused (no models needed)."""

from __future__ import annotations

import pytest

from specllama.engine.sampling import DEFAULT_SEED, SamplingConfig
from specllama.errors import ConfigError
from specllama.methods.base import GenConfig, Method
from specllama.serve.config import ServeConfig, UpstreamConfig
from specllama.serve.errors import ApiError
from specllama.serve.schema import (REFUSED, build_method, gen_config, parse_chat, parse_completion,
                                    parse_json, parse_method_opts)
from specllama.serve.upstream import check_prompt_only, iter_sse, sampling_fields

USER = [{"role": "user", "content": "hello"}]


def chat(**kw):
    return parse_chat({"messages": USER, **kw})


def refused(fn, *args, param=None, match="", **kwargs):
    with pytest.raises(ApiError) as ei:
        fn(*args, **kwargs)
    assert ei.value.status == 400
    assert match in ei.value.message
    if param is not None:
        assert ei.value.param == param
    body = ei.value.body()["error"]
    assert body["type"] == "invalid_request_error" and body["message"] == ei.value.message
    return ei.value


@pytest.mark.parametrize("data,match", [
    (b"{bad", "not valid JSON"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b"[1, 2]", "JSON object"),
    (b"   ", "empty"),
    (b'{"temperature": NaN}', "not valid JSON"),
    (b'{"a": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
])
def test_parse_json_refuses(data, match):
    refused(parse_json, data, match=match)


def test_parse_json_object():
    assert parse_json(b'{"a": [1]}') == {"a": [1]}


def test_chat_roles_and_protection():
    req = parse_chat({"messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "system", "content": [{"type": "text", "text": "DOCS", "protected": False}]},
        {"role": "user", "content": [{"type": "text", "text": "doc"},
                                     {"type": "text", "text": "question?", "protected": True}]},
        {"role": "assistant", "content": "earlier answer"},
    ]})
    roles = [m.role for m in req.messages]
    assert roles == ["system", "system", "user", "assistant"]
    comp = [[p.compressible for p in m.parts] for m in req.messages]
    assert comp == [[False], [True], [True, False], [True]]
    assert req.kind == "chat" and not req.raw and not req.stream


@pytest.mark.parametrize("messages,param", [
    ([], "messages"),
    ("hi", "messages"),
    ([{"role": "tool", "content": "x"}], "messages[0].role"),
    ([{"role": "robot", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": None}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages[0].content[0]"),
    ([{"role": "user", "content": [{"type": "text", "text": 3}]}], "messages[0].content[0].text"),
    ([{"role": "user", "content": [{"type": "text", "text": "a", "protected": "yes"}]}],
     "messages[0].content[0].protected"),
    ([{"role": "assistant", "content": "x", "tool_calls": [{"id": "1"}]}], "messages[0].tool_calls"),
    ([{"role": "user", "content": "\ud800"}], "messages[0].content"),  # a lone surrogate: 400, not 500
    ([{"role": "user", "content": [{"type": "text", "text": "a\udfff"}]}], "messages[0].content[0].text"),
])
def test_chat_bad_messages(messages, param):
    refused(parse_chat, {"messages": messages}, param=param)


@pytest.mark.parametrize("field,value", [
    ("n", 2), ("stop", ["\n"]), ("stop", "END"), ("presence_penalty", 0.5), ("frequency_penalty", 1),
    ("logit_bias", {"1": 5}), ("logprobs", True), ("top_logprobs", 3), ("tools", [{"type": "function"}]),
    ("tool_choice", "required"), ("response_format", {"type": "json_object"}), ("best_of", 3),
    ("echo", True), ("suffix", "x"), ("n", True),
])
def test_unhonourable_fields_refused(field, value):
    err = refused(chat, param=field, **{field: value})
    assert err.code == "unsupported_parameter"


def test_every_refused_field_has_a_neutral_value():
    neutral = {"n": 1, "best_of": 1, "stop": [], "presence_penalty": 0, "frequency_penalty": 0.0,
               "repetition_penalty": 1.0, "min_p": 0, "logit_bias": {}, "logprobs": False, "top_logprobs": 0,
               "echo": False, "suffix": "", "tools": [], "functions": [], "tool_choice": "none",
               "function_call": "auto", "response_format": {"type": "text"}, "audio": None,
               "modalities": ["text"]}
    assert set(neutral) == set(REFUSED)
    chat(**neutral)  # all accepted


def test_unknown_fields_ignored():
    req = chat(user="u1", metadata={"a": "b"}, store=False, service_tier="auto", parallel_tool_calls=True,
               some_future_field={"x": 1})
    assert req.messages[0].parts[0].text == "hello"


def test_sampling_values():
    req = chat(max_tokens=5, temperature=0.5, top_p=0.9, top_k=-1, seed=-1, stream=True,
               stream_options={"include_usage": True}, model="m")
    assert (req.max_tokens, req.temperature, req.top_p, req.top_k, req.seed) == (5, 0.5, 0.9, 0, DEFAULT_SEED)
    assert req.stream and req.include_usage and req.model == "m"
    gen = gen_config(req, GenConfig(n_predict=99, sampling=SamplingConfig(temp=0.0, top_k=40, seed=7)))
    assert gen.n_predict == 5 and gen.sampling.temp == 0.5 and gen.sampling.top_k == 0
    assert gen.sampling.seed == DEFAULT_SEED
    default = GenConfig(n_predict=99, sampling=SamplingConfig(temp=0.3, top_k=40, top_p=0.8, seed=7))
    assert gen_config(chat(), default) == default
    assert chat(max_completion_tokens=7).max_tokens == 7


@pytest.mark.parametrize("field,value", [
    ("temperature", 3), ("temperature", -0.1), ("temperature", "hot"), ("top_p", 0), ("top_p", 1.5),
    ("top_k", -2), ("top_k", 2.5), ("seed", 2**33), ("seed", -5), ("max_tokens", 0), ("max_tokens", -2),
    ("max_tokens", True), ("max_tokens", 1.5), ("stream", "yes"), ("model", 3), ("stream_options", []),
])
def test_bad_sampling_values(field, value):
    refused(chat, param=field, **{field: value})


def test_max_tokens_conflict():
    refused(chat, max_tokens=3, max_completion_tokens=4, match="differ")
    assert chat(max_tokens=3, max_completion_tokens=3).max_tokens == 3


def test_completion_prompt():
    req = parse_completion({"prompt": ["some text"]})
    assert req.kind == "completion" and req.raw
    assert [(p.text, p.compressible) for p in req.messages[0].parts] == [("some text", True)]
    refused(parse_completion, {"prompt": ["a", "b"]}, param="prompt", match="batched")
    refused(parse_completion, {"prompt": [1, 2, 3]}, param="prompt", match="token")
    refused(parse_completion, {"prompt": [[1, 2, 3]]}, param="prompt", match="token")
    refused(parse_completion, {}, param="prompt")


def test_lenient_mode_leaves_sampling_to_the_upstream():
    req = parse_chat({"messages": USER, "n": 3, "stop": ["x"], "temperature": 9}, strict=False)
    assert req.body["n"] == 3 and req.max_tokens is None
    refused(parse_chat, {"messages": USER, "specllama": {"bogus": 1}}, False, param="specllama.bogus")


def test_method_opts_types():
    assert parse_method_opts(None) == {}
    got = parse_method_opts({"method": "specpc", "budget": 100, "window": 8, "pool": "avg",
                             "no_weighted_query": True, "keep": None})
    assert got["budget"] == 100 and got["pool"] == "avg" and got["keep"] is None
    refused(parse_method_opts, [1], param="specllama")
    refused(parse_method_opts, {"budgett": 1}, param="specllama.budgett", match="unknown")
    refused(parse_method_opts, {"budget": "100"}, param="specllama.budget")
    refused(parse_method_opts, {"budget": True}, param="specllama.budget")
    refused(parse_method_opts, {"method": "magic"}, param="specllama.method")
    refused(parse_method_opts, {"keep": "half"}, param="specllama.keep")
    refused(parse_method_opts, {"no_weighted_query": 1}, param="specllama.no_weighted_query")


def test_build_method_overrides_defaults():
    defaults = {"method": None, "budget": None, "keep": 0.5}
    m = build_method(chat(specllama={"budget": 77}), defaults, has_draft=True)
    assert m.name == "specpc" and m.budget.tokens == 77 and m.budget.keep is None
    m = build_method(chat(), defaults, has_draft=True)
    assert m.budget.keep == 0.5
    assert build_method(chat(), defaults, has_draft=False).name == "dense"
    refused(build_method, chat(specllama={"budget": 10, "keep": 0.5}), defaults, True, match="either")
    refused(build_method, chat(specllama={"keep": 1.5}), defaults, True, match="keep")
    refused(build_method, chat(specllama={"method": "specpc"}), defaults, False, param="specllama.method",
            match="draft")


def test_prompt_only_methods_for_upstreams():
    check_prompt_only(Method(prompt_stage=object()))
    with pytest.raises(ConfigError, match="KV cache"):
        check_prompt_only(Method(kv_stage=object()))


def test_upstream_sampling_fields():
    g = GenConfig(n_predict=10, sampling=SamplingConfig(temp=0.0))
    assert sampling_fields(g) == {"temperature": 0.0, "max_tokens": 10}
    g = GenConfig(n_predict=-1, sampling=SamplingConfig(temp=0.7, top_k=5, top_p=0.9, seed=3))
    assert sampling_fields(g) == {"temperature": 0.7, "top_p": 0.9, "top_k": 5, "seed": 3}


def test_iter_sse():
    lines = [": comment", 'data: {"a": 1}', "", "data: [DONE]", 'data: {"b": 2}']
    assert list(iter_sse(lines)) == [{"a": 1}]
    from specllama.serve.upstream import UpstreamError
    with pytest.raises(UpstreamError, match="boom"):
        list(iter_sse(['data: {"error": {"message": "boom"}}']))


@pytest.mark.parametrize("kw,match", [
    ({"port": 70000}, "--port"), ({"queue_size": 0}, "--queue-size"), ({"max_body_bytes": 10}, "--max-body"),
    ({"max_prompt_tokens": 0}, "--max-prompt-tokens"), ({"api_key": " "}, "--api-key"), ({"host": ""}, "--host"),
])
def test_serve_config_validation(kw, match):
    with pytest.raises(ConfigError, match=match):
        ServeConfig(**kw)
    assert ServeConfig().host == "127.0.0.1"


@pytest.mark.parametrize("url", ["ftp://x/v1", "localhost:8080", "http:///v1", "http://h/v1?x=1"])
def test_upstream_config_validation(url):
    with pytest.raises(ConfigError, match="--upstream"):
        UpstreamConfig(url=url)
    up = UpstreamConfig(url="http://127.0.0.1:1/v1/", api_key="k")
    assert up.endpoint("/models") == "http://127.0.0.1:1/v1/models"
    assert up.headers() == {"Authorization": "Bearer k"}


def test_completion_prompt_with_a_lone_surrogate_is_a_400():
    refused(parse_completion, {"prompt": "x\ud800y"}, param="prompt")
