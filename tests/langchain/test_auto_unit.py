"""Auto mode and pools, without a server (respx): ``ChatEngine``/``EngineTextLLM`` construct without I/O,
detect the engine on first use (once; ``engine=`` skips it) and then talk that engine's dialect; every class
takes a ready client or an ``EnginePool`` through ``client=``."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from langchain_core.exceptions import ModelConnectionError
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_core.load import dumpd
from langchain_selfhosted import ChatEngine
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatTGI
from langchain_selfhosted import ChatVLLM
from langchain_selfhosted import EngineTextLLM
from langchain_selfhosted import errors as lc_errors
from pydantic import BaseModel
from pydantic import ValidationError

import engine_clients
from engine_clients import EnginePool
from engine_clients import LlamaCppClient
from engine_clients import TGIClient
from engine_clients import VLLMClient
from tests.support.fake_engines import ENGINES
from tests.support.fake_engines import PROBES
from tests.support.fake_engines import TEXT_ROUTES
from tests.support.fake_engines import FakeEngine

BASE = "http://auto.test"
REPLICAS = ("http://replica-a.test", "http://replica-b.test")
ENV_VARS = ("TGI_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "TGI_API_KEY", "VLLM_API_KEY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (*ENV_VARS, "LLAMACPP_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:  # every request must hit a mocked route
        yield r


class Weather(BaseModel):
    city: str
    celsius: int


def tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"the {name} tool",
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]},
        },
    }


# ---- construction ------------------------------------------------------------------------------------------


def test_constructing_does_no_io(router: respx.MockRouter) -> None:
    models = [
        ChatEngine(base_url=BASE),
        EngineTextLLM(base_url=BASE, temperature=0),
        ChatEngine(base_url=BASE, engine="vllm"),
        ChatEngine(client=EnginePool(list(REPLICAS))),
        ChatVLLM(client=EnginePool(list(REPLICAS), engine="vllm")),
    ]
    for model in models:
        model._get_ls_params()
        model._identifying_params  # noqa: B018
        dumpd(model)
        repr(model)
    assert not router.calls
    assert models[0].engine is None and models[0].active_engine is None
    assert models[0]._llm_type == "auto-chat" and models[1]._llm_type == "auto"
    assert models[0]._get_ls_params()["ls_provider"] == "auto"
    assert models[2]._llm_type == "vllm-chat" and models[2].active_engine == "vllm"


def test_auto_classes_type_only_the_common_sampling_fields() -> None:
    common = set(ChatEngine.sampling_fields())
    assert common == {
        "temperature",
        "max_tokens",
        "top_p",
        "seed",
        "stop",
        "frequency_penalty",
        "presence_penalty",
        "logprobs",
        "top_logprobs",
        "adapter",
        "adapter_scale",
        "thinking",
        "reasoning_effort",
        "thinking_budget",
    }
    for cls in (ChatTGI, ChatVLLM, ChatLlamaCpp):
        assert common < set(cls.sampling_fields())
    chat_only = {"presence_penalty", "thinking", "reasoning_effort", "thinking_budget"}
    assert set(EngineTextLLM.sampling_fields()) == common - chat_only


def test_engine_names_are_checked_and_normalized() -> None:
    assert ChatEngine(base_url=BASE, engine="llama.cpp").engine == "llamacpp"
    assert ChatEngine(base_url=BASE, engine="Text-Generation-Inference").engine == "tgi"
    with pytest.raises(ValidationError, match="unknown engine"):
        ChatEngine(base_url=BASE, engine="ollama")


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="needs base_url"):
        ChatEngine()
    monkeypatch.setenv("LLAMACPP_BASE_URL", "http://llama.env.test")
    model = ChatEngine()  # the one variable set names the engine too: nothing to probe
    assert (model.base_url, model.engine) == ("http://llama.env.test", "llamacpp")
    monkeypatch.setenv("VLLM_BASE_URL", "http://vllm.env.test")
    monkeypatch.setenv("VLLM_API_KEY", "vk")
    with pytest.raises(ValidationError, match="several"):
        ChatEngine()
    model = ChatEngine(engine="vllm")
    assert model.base_url == "http://vllm.env.test" and model.api_key.get_secret_value() == "vk"


# ---- detection, then the detected engine's dialect -----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_first_call_detects_then_talks_that_engine(router: respx.MockRouter, engine: str) -> None:
    server = FakeEngine(router, engine, BASE, content="hello")
    model = ChatEngine(base_url=BASE, max_tokens=5)
    message = model.invoke("hi")
    assert message.content == "hello"
    assert model.active_engine == engine and model.engine is None  # the field keeps what was configured
    assert message.response_metadata["model_name"] == "m"  # discovered with that engine's info route
    assert server.post_paths == ["/v1/chat/completions"]
    assert server.last_body["max_tokens"] == 5
    probes = len(server.probes)
    assert probes >= 1 and set(server.probes) <= set(PROBES)
    model.invoke("again")
    assert len(server.probes) == probes  # detected once
    assert model._get_ls_params()["ls_provider"] == engine
    assert model.lc_secrets == {"api_key": f"{model.client.env_prefix}_API_KEY"}  # type: ignore[union-attr]
    assert type(model.client) is {"tgi": TGIClient, "vllm": VLLMClient, "llamacpp": LlamaCppClient}[engine]


def test_engine_given_skips_probing(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "llamacpp", BASE)
    model = ChatEngine(base_url=BASE, engine="llama.cpp", model="m")
    assert model.invoke("hi").content == "hi there"
    assert server.probes == [] and server.post_paths == ["/v1/chat/completions"]


def test_llamacpp_named_tool_choice_is_that_tool_required(router: respx.MockRouter) -> None:
    server = FakeEngine(
        router,
        "llamacpp",
        BASE,
        content="",
        tool_calls=[{"id": "c1", "type": "function", "function": {"name": "b", "arguments": '{"x": "1"}'}}],
    )
    ai = ChatEngine(base_url=BASE).bind_tools([tool("a"), tool("b")], tool_choice="b").invoke("use b")
    assert [c["name"] for c in ai.tool_calls] == ["b"]
    body = server.last_body
    assert [t["function"]["name"] for t in body["tools"]] == ["b"]
    assert body["tool_choice"] == "required"


def test_vllm_named_tool_choice_is_sent_as_named(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "vllm", BASE)
    ChatEngine(base_url=BASE).bind_tools([tool("a"), tool("b")], tool_choice="b").invoke("use b")
    body = server.last_body
    assert len(body["tools"]) == 2
    assert body["tool_choice"] == {"type": "function", "function": {"name": "b"}}


def test_tgi_structured_output_is_a_tgi_grammar(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "tgi", BASE, content='{"city": "Paris", "celsius": 21}')
    result = ChatEngine(base_url=BASE).with_structured_output(Weather).invoke("weather?")
    assert result == Weather(city="Paris", celsius=21)
    fmt = server.last_body["response_format"]
    assert fmt["type"] == "json" and fmt["value"]["properties"].keys() == {"city", "celsius"}


def test_engine_parameters_go_through_model_kwargs(router: respx.MockRouter) -> None:
    vllm = FakeEngine(router, "vllm", BASE)
    ChatEngine(base_url=BASE, model_kwargs={"top_k": 5, "min_p": 0.1}).invoke("hi")
    assert vllm.last_body["top_k"] == 5 and vllm.last_body["min_p"] == 0.1
    tgi = FakeEngine(router, "tgi", "http://tgi.test")
    model = ChatEngine(base_url="http://tgi.test", model_kwargs={"top_k": 5})
    with pytest.raises(ModelInvalidRequestError, match="top_k"):
        model.invoke("hi")  # TGI's chat route has no top_k: refused before sending
    assert tgi.posts == []
    model = ChatEngine(base_url="http://tgi.test", model_kwargs={"tool_prompt": "Tools:"})
    model.invoke("hi")
    assert tgi.last_body["tool_prompt"] == "Tools:"


async def test_async_first_call_detects_with_async_probes(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "vllm", BASE, content="a b c")
    model = ChatEngine(base_url=BASE)
    assert (await model.ainvoke("hi")).content == "a b c"
    assert model.active_engine == "vllm"
    chunks = [c async for c in model.astream("hi")]
    assert "".join(str(c.content) for c in chunks) == "a b c"
    assert chunks[-1].usage_metadata is not None
    probes = len(server.probes)
    model.invoke("sync now")  # the sync client reuses what the async path detected
    assert len(server.probes) == probes


@pytest.mark.parametrize("engine", ENGINES)
def test_text_llm_uses_the_detected_engines_text_route(router: respx.MockRouter, engine: str) -> None:
    server = FakeEngine(router, engine, BASE, content="world")
    llm = EngineTextLLM(base_url=BASE, max_tokens=3)
    assert llm.invoke("hello") == "world"
    assert server.post_paths == [TEXT_ROUTES[engine]]
    assert llm.active_engine == engine


def test_detection_failures_are_langchain_errors(router: respx.MockRouter) -> None:
    for path in PROBES:
        router.get(BASE + path).mock(return_value=httpx.Response(404))
    with pytest.raises(lc_errors.EngineError) as info:
        ChatEngine(base_url=BASE).invoke("hi")
    assert isinstance(info.value.__cause__ or info.value, engine_clients.EngineError)
    assert "pass engine=" in str(info.value)
    router.get("http://down.test/info").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ModelConnectionError):
        ChatEngine(base_url="http://down.test").invoke("hi")


def test_model_copy_to_another_url_detects_again(router: respx.MockRouter) -> None:
    FakeEngine(router, "tgi", BASE)
    FakeEngine(router, "llamacpp", "http://other.test")
    model = ChatEngine(base_url=BASE)
    model.invoke("hi")
    moved = model.model_copy(update={"base_url": "http://other.test"})
    moved.invoke("hi")
    assert (model.active_engine, moved.active_engine) == ("tgi", "llamacpp")


def test_pickled_model_remembers_the_detected_engine(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "vllm", BASE)
    model = ChatEngine(base_url=BASE, api_key="secret-key")
    model.invoke("hi")
    blob = pickle.dumps(model)
    assert b"secret-key" not in blob
    restored = pickle.loads(blob)
    probes = len(server.probes)
    restored.invoke("hi")
    assert len(server.probes) == probes and restored.active_engine == "vllm"


# ---- ready clients and pools --------------------------------------------------------------------------


def test_a_ready_client(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "llamacpp", BASE)
    client = LlamaCppClient(BASE, model="m")
    model = ChatEngine(client=client)
    assert model.client is client and model.engine == "llamacpp" and model.base_url == BASE
    assert model.model == "m"
    assert model.invoke("hi").content == "hi there"
    assert server.probes == []
    assert ChatLlamaCpp(client=client).client is client
    with pytest.raises(ValidationError, match="llamacpp"):
        ChatTGI(client=client)
    with pytest.raises(ValidationError, match="engine='vllm'"):
        ChatEngine(client=client, engine="vllm")
    restored = pickle.loads(pickle.dumps(model))  # without the client: rebuilt from base_url
    assert restored.engine_client is None and restored.invoke("hi").content == "hi there"
    assert copy.deepcopy(model).client is client  # copies share it


@pytest.mark.parametrize("engine", [None, "vllm"])
def test_pool_of_two_replicas_serves_invoke_and_stream(router: respx.MockRouter, engine: str | None) -> None:
    servers = [FakeEngine(router, "vllm", url, content="one two") for url in REPLICAS]
    pool = EnginePool(list(REPLICAS), engine=engine)
    model = ChatEngine(client=pool, temperature=0)
    assert model.client is pool and model.base_url == ",".join(REPLICAS)
    assert [model.invoke("hi").content for _ in range(3)] == ["one two"] * 3
    # least busy, ties rotate (the model-name discovery after the first answer takes a turn too)
    assert sorted(len(s.posts) for s in servers) == [1, 2]
    assert all(s.last_body["temperature"] == 0 for s in servers)
    chunks = list(model.stream("hi"))
    assert "".join(str(c.content) for c in chunks) == "one two"
    assert chunks[-1].usage_metadata == {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    assert model.active_engine == "vllm" and model._get_ls_params()["ls_provider"] == "vllm"
    assert model.model_name == "m"  # discovered through the pool
    stats = pool.stats()
    assert stats.requests == 5 and stats.failures == 0  # 4 chats and 1 info
    assert all(r.requests >= 2 for r in stats.replicas)


async def test_pool_async_and_text(router: respx.MockRouter) -> None:
    servers = [FakeEngine(router, "llamacpp", url, content="x y") for url in REPLICAS]
    pool = EnginePool(list(REPLICAS), engine="llamacpp")
    chat = ChatLlamaCpp(client=pool, top_k=3)
    assert (await chat.ainvoke("hi")).content == "x y"
    assert "".join([str(c.content) async for c in chat.astream("hi")]) == "x y"
    text = EngineTextLLM(client=pool)
    assert await text.ainvoke("p") == "x y"
    assert sorted(p for s in servers for p in s.post_paths) == ["/completion"] + ["/v1/chat/completions"] * 2
    assert any(b.get("top_k") == 3 for s in servers for _, b in s.posts)
    await pool.aclose()


def test_pool_fails_over_to_the_other_replica(router: respx.MockRouter) -> None:
    FakeEngine(router, "vllm", REPLICAS[1], content="from b")
    router.post(REPLICAS[0] + "/v1/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    model = ChatVLLM(client=EnginePool(list(REPLICAS), engine="vllm", max_retries=0), model="m")
    assert [model.invoke("hi").content for _ in range(2)] == ["from b", "from b"]


def test_pool_model_copies_share_the_pool_and_refuse_pickling() -> None:
    pool = EnginePool(list(REPLICAS), engine="tgi")
    model = ChatEngine(client=pool)
    assert model.engine == "tgi"
    assert copy.deepcopy(model).client is pool
    assert model.model_copy().client is pool
    with pytest.raises(TypeError, match="EnginePool"):
        pickle.dumps(model)
    with pytest.raises(ValidationError, match="tgi"):
        ChatVLLM(client=pool)
    with pytest.raises(ValidationError):
        ChatEngine(client="http://not-a-client")
