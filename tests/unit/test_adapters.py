"""adapter= per request, adapters(), models() and their loading, against fakes of each engine's answers.

What the fakes answer is what the real servers answered here (tests/integration/test_adapters_*.py and
test_router_mode.py check the same against llama-server and vLLM); TGI and SGLang from their specs.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import respx

from engine_clients import AdapterNotFoundError
from engine_clients import BadRequestError
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import ModelRequiredError
from engine_clients import NotFoundError
from engine_clients import SGLangClient
from engine_clients import TGIClient
from engine_clients import VLLMClient

URL = "http://engine.test"
CHAT = {
    "id": "c",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": " Hello LoRA."}, "finish_reason": "stop"}
    ],
}
CHUNKS = [
    {"id": "c", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {"content": " Hello LoRA."}, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
]  # fmt: skip
SSE = "".join(f"data: {json.dumps(c)}\n\n" for c in CHUNKS) + "data: [DONE]\n\n"
LORA_ADAPTERS = [  # llama-server --lora a.gguf --lora-scaled /models/bye.gguf:0 (task_name from the GGUF)
    {"id": 0, "path": "/models/lora.gguf", "scale": 1.0, "task_name": "lora", "prompt_prefix": ""},
    {"id": 1, "path": "/models/bye.gguf", "scale": 0.0, "task_name": "", "prompt_prefix": ""},
]
VLLM_MODELS = {
    "object": "list",
    "data": [
        {"id": "base", "object": "model", "root": "/m/base", "parent": None, "max_model_len": 8192},
        {"id": "lora", "object": "model", "root": "/a/lora", "parent": "base", "max_model_len": None},
    ],
}
VLLM_404 = {
    "error": {
        "message": "The model `nope` does not exist. Valid aliases: base.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
}


def _chat_answer(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return httpx.Response(200, text=SSE, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=CHAT)


# --- the spelling of each engine (pure: build_chat / build_generate) ------------------------------------------


def test_vllm_and_sglang_openai_routes() -> None:
    vllm = VLLMClient(URL, model="base")
    assert vllm.build_chat("hi", adapter="lora").json["model"] == "lora"
    assert vllm.build_generate("hi", adapter="lora").json["model"] == "lora"
    assert vllm.build_chat("hi").json["model"] == "base"
    with pytest.raises(InvalidRequestError, match="adapter_scale"):
        vllm.build_chat("hi", adapter="lora", adapter_scale=0.5)
    assert vllm.build_chat("hi", adapter="lora", adapter_scale=1.0).json["model"] == "lora"
    # SGLang: a bare model="adapter" silently runs the base model, so "base:adapter"; no base known: lora_path
    sglang = SGLangClient(URL, model="qwen")
    assert sglang.build_chat("hi", adapter="sql").json["model"] == "qwen:sql"
    assert sglang.build_chat("hi", model="qwen:old", adapter="sql").json["model"] == "qwen:sql"
    body = SGLangClient(URL).build_chat("hi", adapter="sql").json
    assert body["lora_path"] == "sql" and "model" not in body
    generate = sglang.build_generate("hi", adapter="sql").json
    assert generate["lora_path"] == "sql"


def test_tgi_adapter_id_and_chat_model() -> None:
    tgi = TGIClient(URL)
    assert tgi.build_generate("hi", adapter="sql").json["parameters"]["adapter_id"] == "sql"
    assert "adapter_id" not in tgi.build_generate("hi").json["parameters"]
    assert tgi.build_chat("hi", adapter="sql").json["model"] == "sql"
    # any model other than "tgi" selects an adapter on TGI's chat route: the adapter wins over model=
    assert tgi.build_chat("hi", model="base", adapter="sql").json["model"] == "sql"
    assert "model" not in TGIClient(URL, model="base").build_chat("hi").json
    with pytest.raises(InvalidRequestError, match="adapter_scale"):
        tgi.build_generate("hi", adapter="sql", adapter_scale=2.0)
    with pytest.raises(InvalidRequestError, match="LORA_ADAPTERS"):
        tgi.adapters()


def test_scale_without_adapter_and_empty_name_are_refused() -> None:
    with pytest.raises(InvalidRequestError, match="needs adapter="):
        VLLMClient(URL).build_chat("hi", adapter_scale=0.5)
    with pytest.raises(InvalidRequestError, match="non-empty"):
        VLLMClient(URL).build_chat("hi", adapter="")
    with pytest.raises(InvalidRequestError, match="must be a number"):
        LlamaCppClient(URL).build_chat("hi", adapter="lora", adapter_scale="1")  # type: ignore[arg-type]


# --- llama.cpp: ids from /lora-adapters, read once ------------------------------------------------------------


def test_llamacpp_reads_the_adapters_once_and_zeroes_the_others() -> None:
    with respx.mock(base_url=URL) as mock:
        listing = mock.get("/lora-adapters").respond(json=LORA_ADAPTERS)
        chat = mock.post("/v1/chat/completions").mock(side_effect=_chat_answer)
        completion = mock.post("/completion").respond(json={"content": " Hello Bye.", "stop": True})
        client = LlamaCppClient(URL)
        with pytest.raises(InvalidRequestError, match="lora-adapters"):
            client.build_chat("hi", adapter="lora")  # nothing read yet: build_* cannot spell it
        assert client.chat("hi", adapter="lora").content == " Hello LoRA."
        assert client.generate("hi", adapter="bye", adapter_scale=0.5).content == " Hello Bye."
        list(client.chat_stream("hi", adapter="1", adapter_scale=0))  # by id
        assert listing.call_count == 1
        sent = [json.loads(c.request.content)["lora"] for c in chat.calls]
        assert sent[0] == [{"id": 0, "scale": 1.0}, {"id": 1, "scale": 0.0}]
        assert sent[1] == [{"id": 0, "scale": 0.0}, {"id": 1, "scale": 0.0}]
        assert json.loads(completion.calls[0].request.content)["lora"] == [
            {"id": 0, "scale": 0.0},
            {"id": 1, "scale": 0.5},
        ]
        # what build_chat shows once the list is known; file names and paths name adapters too
        assert client.build_chat("hi", adapter="bye.gguf").json["lora"][1]["scale"] == 1.0
        assert client.build_chat("hi", adapter="/models/lora.gguf").json["lora"][0]["scale"] == 1.0
        assert "lora" not in client.build_chat("hi").json  # no adapter: the server's own scales


def test_llamacpp_unknown_adapter_is_refused_before_sending() -> None:
    with respx.mock(base_url=URL, assert_all_called=False) as mock:
        mock.get("/lora-adapters").respond(json=LORA_ADAPTERS)
        chat = mock.post("/v1/chat/completions").mock(side_effect=_chat_answer)
        client = LlamaCppClient(URL)
        with pytest.raises(AdapterNotFoundError) as caught:
            client.chat("hi", adapter="nope")
        assert caught.value.adapter == "nope"
        assert caught.value.available == ("lora", "bye")
        assert "'lora', 'bye'" in str(caught.value)
        with pytest.raises(AdapterNotFoundError):
            list(client.chat_stream("hi", adapter="nope"))
        assert chat.call_count == 0
        adapters = client.adapters()
        assert [(a.name, a.id, a.scale, a.path) for a in adapters] == [
            ("lora", 0, 1.0, "/models/lora.gguf"),
            ("bye", 1, 0.0, "/models/bye.gguf"),
        ]


def test_llamacpp_async_stream_reads_the_adapters_on_first_iteration() -> None:
    async def go() -> list[Any]:
        async with LlamaCppClient(URL) as client:
            stream = client.achat_stream("hi", adapter="lora")  # no I/O yet
            return [e async for e in stream]

    with respx.mock(base_url=URL) as mock:
        listing = mock.get("/lora-adapters").respond(json=LORA_ADAPTERS)
        chat = mock.post("/v1/chat/completions").mock(side_effect=_chat_answer)
        events = asyncio.run(go())
        assert events[-1].content == " Hello LoRA."
        assert listing.call_count == 1
        assert json.loads(chat.calls[0].request.content)["lora"][0] == {"id": 0, "scale": 1.0}


# --- vLLM: adapters are models ---------------------------------------------------------------------------------


def test_vllm_unknown_adapter_is_typed_after_sending() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.post("/v1/chat/completions").respond(404, json=VLLM_404)
        mock.post("/v1/completions").respond(404, json=VLLM_404)
        client = VLLMClient(URL)
        with pytest.raises(AdapterNotFoundError) as caught:
            client.chat("hi", adapter="nope")
        assert caught.value.adapter == "nope" and caught.value.status_code == 404
        with pytest.raises(AdapterNotFoundError):
            list(client.chat_stream("hi", adapter="nope"))
        with pytest.raises(AdapterNotFoundError):
            client.generate("hi", adapter="nope")
        with pytest.raises(AdapterNotFoundError):
            asyncio.run(_drain(client.agenerate_stream("hi", adapter="nope")))
        with pytest.raises(NotFoundError) as plain:
            client.chat("hi", model="nope")  # a wrong model= stays a NotFoundError
        assert type(plain.value) is NotFoundError


async def _drain(stream: Any) -> None:
    async for _ in stream:
        pass


def test_vllm_lists_and_loads_adapters() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.get("/v1/models").respond(json=VLLM_MODELS)
        load = mock.post("/v1/load_lora_adapter").respond(
            200, text="Success: LoRA adapter 'bye' added successfully."
        )
        unload = mock.post("/v1/unload_lora_adapter").respond(
            200, text="Success: LoRA adapter 'bye' removed successfully."
        )
        client = VLLMClient(URL)
        adapters = client.adapters()
        assert [(a.name, a.parent, a.path) for a in adapters] == [("lora", "base", "/a/lora")]
        models = client.models()
        assert [(m.id, m.state, m.parent, m.is_adapter, m.context_length) for m in models] == [
            ("base", "loaded", None, False, 8192),
            ("lora", "loaded", "base", True, None),
        ]
        client.load_adapter("bye", "/a/bye")
        assert json.loads(load.calls[0].request.content) == {"lora_name": "bye", "lora_path": "/a/bye"}
        asyncio.run(client.aunload_adapter("bye"))
        assert json.loads(unload.calls[0].request.content) == {"lora_name": "bye"}
        with pytest.raises(InvalidRequestError, match="loading models"):
            client.load_model("other")


def test_vllm_load_errors_are_typed() -> None:
    already = {"error": {"message": "The lora adapter 'bye' has already been loaded.", "type": "InvalidUserInput",
                         "param": None, "code": 400}}  # fmt: skip
    with respx.mock(base_url=URL) as mock:
        mock.post("/v1/load_lora_adapter").respond(400, json=already)
        with pytest.raises(BadRequestError, match="already been loaded"):
            VLLMClient(URL).load_adapter("bye", "/a/bye")


# --- llama-server router mode -----------------------------------------------------------------------------------

ROUTER_MODELS = {
    "object": "list",
    "data": [
        {"id": "alpha", "aliases": [], "object": "model", "status": {"value": "loaded", "args": []},
         "meta": {"n_ctx": 2048, "n_ctx_train": 32768}},
        {"id": "beta", "aliases": ["b"], "object": "model", "status": {"value": "loading", "args": []}},
        {"id": "gamma", "aliases": [], "object": "model",
         "status": {"value": "unloaded", "args": [], "failed": True, "exit_code": 1}},
    ],
}  # fmt: skip
ROUTER_PROPS = {"role": "router", "max_instances": 1, "models_autoload": True,
                "default_generation_settings": {"params": None, "n_ctx": 0}, "build_info": "b0-unknown"}  # fmt: skip
MISSING = {
    "error": {
        "code": 400,
        "message": "model name is missing from the request",
        "type": "invalid_request_error",
    }
}


def test_router_models_and_their_states() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.get("/models").respond(json=ROUTER_MODELS)
        models = LlamaCppClient(URL).models()
        assert [(m.id, m.state, m.context_length, m.aliases) for m in models] == [
            ("alpha", "loaded", 2048, ()),
            ("beta", "loading", None, ("b",)),
            ("gamma", "failed", None, ()),
        ]


def test_router_load_waits_and_repeats_are_no_ops() -> None:
    running = {"error": {"code": 400, "message": "model is already running", "type": "invalid_request_error"}}
    stopped = {"error": {"code": 400, "message": "model is not running", "type": "invalid_request_error"}}
    with respx.mock(base_url=URL) as mock:
        answers = iter([httpx.Response(200, json={"success": True}), httpx.Response(400, json=running)])
        load = mock.post("/models/load").mock(side_effect=lambda request: next(answers))
        ready = mock.get("/props").respond(json={"default_generation_settings": {"n_ctx": 2048}})
        unload = mock.post("/models/unload").mock(
            side_effect=[httpx.Response(200, json={"success": True}), httpx.Response(400, json=stopped)]
        )
        client = LlamaCppClient(URL)
        client.load_model("beta")
        asyncio.run(client.aload_model("beta"))
        client.unload_model("beta")
        client.unload_model("beta")
        assert [json.loads(c.request.content) for c in load.calls] == [{"model": "beta"}] * 2
        assert ready.calls[0].request.url.params["model"] == "beta"
        assert unload.call_count == 2
        answers = iter([httpx.Response(200, json={"success": True})])
        client.load_model("alpha", wait=False)
        assert ready.call_count == 2  # not asked again without wait
        mock.post("/models/load").respond(404, json={"error": {"message": "File Not Found", "code": 404}})
        with pytest.raises(NotFoundError):
            client.load_model("nope")


def test_router_request_without_model_names_the_models() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.post("/v1/chat/completions").respond(400, json=MISSING)
        mock.get("/models").respond(json=ROUTER_MODELS)
        client = LlamaCppClient(URL)
        with pytest.raises(ModelRequiredError) as caught:
            client.chat("hi")
        assert caught.value.models == ("alpha", "beta", "gamma")
        assert "router" in str(caught.value) and "alpha, beta, gamma" in str(caught.value)
        with pytest.raises(ModelRequiredError) as streamed:  # streams stay unwrapped: the hint, no listing
            list(client.chat_stream("hi"))
        assert "pass model=" in str(streamed.value) and streamed.value.models == ()
        unknown = {
            "error": {"code": 400, "message": "model 'nope' not found", "type": "invalid_request_error"}
        }
        mock.post("/v1/chat/completions").respond(400, json=unknown)
        with pytest.raises(NotFoundError, match="not found"):
            client.chat("hi", model="nope")


def test_router_info_reports_no_zero_limits() -> None:
    with respx.mock(base_url=URL) as mock:
        mock.get("/v1/models").respond(json=ROUTER_MODELS)
        props = mock.get("/props").respond(json=ROUTER_PROPS)
        info = LlamaCppClient(URL).info()
        assert info.model is None
        assert (
            info.max_input_tokens is None and info.max_total_tokens is None and info.max_output_tokens is None
        )
        assert info.raw["router"] is True
        # with a model: that model's limits when it is loaded (its instance's /props), never loading it
        props.respond(json={"default_generation_settings": {"n_ctx": 2048, "params": {"n_predict": -1}}})
        info = LlamaCppClient(URL, model="alpha").info()
        assert (info.model, info.max_input_tokens, info.max_total_tokens) == ("alpha", 2048, 2048)
        assert props.calls[-1].request.url.params["autoload"] == "false"
        props.respond(400, json={"error": {"code": 400, "message": "model is not loaded"}})
        info = LlamaCppClient(URL, model="beta").info()
        assert (info.model, info.max_total_tokens) == ("beta", None)
