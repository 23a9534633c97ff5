"""Auto mode and pools, without a server (respx): ``EngineLLM`` used directly constructs without I/O, detects
the engine on first use (once; ``engine=`` skips it) and then talks that engine's dialect; every class takes a
ready client or an ``EnginePool`` through ``client=``."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.llms.selfhosted import TGI
from llama_index.llms.selfhosted import VLLM
from llama_index.llms.selfhosted import EngineLLM
from llama_index.llms.selfhosted import LlamaCpp
from pydantic import BaseModel

from engine_clients import EngineDetectionError
from engine_clients import EnginePool
from engine_clients import EngineUnavailableError
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import TGIClient
from engine_clients import VLLMClient
from tests.support.fake_engines import ENGINES
from tests.support.fake_engines import PROBES
from tests.support.fake_engines import TEXT_ROUTES
from tests.support.fake_engines import FakeEngine

BASE = "http://auto.test"
REPLICAS = ("http://replica-a.test", "http://replica-b.test")
CLIENTS = {"tgi": TGIClient, "vllm": VLLMClient, "llamacpp": LlamaCppClient}
USER = [ChatMessage(role="user", content="hi")]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for prefix in ("TGI", "VLLM", "LLAMACPP"):
        monkeypatch.delenv(f"{prefix}_BASE_URL", raising=False)
        monkeypatch.delenv(f"{prefix}_API_KEY", raising=False)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as r:  # every request must hit a mocked route
        yield r


class Weather(BaseModel):
    city: str
    celsius: int


def _tools() -> list[FunctionTool]:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def mul(a: int, b: int) -> int:
        """Multiply two numbers."""
        return a * b

    return [FunctionTool.from_defaults(add), FunctionTool.from_defaults(mul)]


def _call(name: str, args: str) -> list[dict[str, Any]]:
    return [{"id": "c1", "type": "function", "function": {"name": name, "arguments": args}}]


# ---- construction ------------------------------------------------------------------------------------------


def test_constructing_does_no_io(router: respx.MockRouter) -> None:
    llms = [
        EngineLLM(BASE),
        EngineLLM(BASE, engine="vllm", temperature=0.1),
        EngineLLM(client=EnginePool(list(REPLICAS))),
        VLLM(client=EnginePool(list(REPLICAS), engine="vllm")),
    ]
    for llm in llms:
        llm.to_payload()
        llm.to_dict()
        repr(llm)
    assert not router.calls
    auto = llms[0]
    assert auto.engine is None and auto.class_name() == "engine_llm" and auto.fixed_engine() is None
    assert auto.to_payload()["engine"] is None
    assert llms[1].engine == "vllm" and isinstance(llms[1].client, VLLMClient)  # known: built at once


def test_engine_names_are_checked_and_normalized() -> None:
    assert EngineLLM(BASE, engine="llama.cpp").engine == "llamacpp"
    with pytest.raises(InvalidRequestError, match="unknown engine"):
        EngineLLM(BASE, engine="ollama")
    assert TGI(BASE, engine="tgi").engine == "tgi"
    with pytest.raises(ValueError, match="TGI is for tgi"):
        TGI(BASE, engine="vllm")


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidRequestError, match="none of"):
        EngineLLM()
    monkeypatch.setenv("TGI_BASE_URL", "http://tgi.env.test")
    llm = EngineLLM()  # the one variable set names the engine too: nothing to probe
    assert (llm.base_url, llm.engine) == ("http://tgi.env.test", "tgi")
    monkeypatch.setenv("VLLM_BASE_URL", "http://vllm.env.test")
    with pytest.raises(InvalidRequestError, match="several"):
        EngineLLM()
    assert EngineLLM(engine="vllm").base_url == "http://vllm.env.test"


# ---- detection, then the detected engine's dialect -----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_first_call_detects_then_talks_that_engine(router: respx.MockRouter, engine: str) -> None:
    server = FakeEngine(router, engine, BASE, content="hello")
    llm = EngineLLM(BASE, max_tokens=5)
    assert llm.chat(USER).message.content == "hello"
    assert llm.engine == engine and type(llm.client) is CLIENTS[engine]
    assert server.post_paths == ["/v1/chat/completions"] and server.last_body["max_tokens"] == 5
    probes = len(server.probes)
    assert probes >= 1 and set(server.probes) <= set(PROBES)
    assert llm.complete("x", formatted=True).text == "hello"  # the engine's native text route
    assert server.post_paths[-1] == TEXT_ROUTES[engine]
    assert len(server.probes) == probes  # detected once
    assert llm.to_payload()["engine"] == engine


@pytest.mark.parametrize(("engine", "window"), [("tgi", 3256), ("vllm", 2048), ("llamacpp", 1024)])
def test_metadata_detects_and_reads_the_real_limits(
    router: respx.MockRouter, engine: str, window: int
) -> None:
    FakeEngine(router, engine, BASE)
    meta = EngineLLM(BASE).metadata
    assert meta.context_window == window and meta.model_name == "m"


def test_metadata_survives_a_failed_detection(router: respx.MockRouter) -> None:
    for path in PROBES:
        router.get(BASE + path).mock(return_value=httpx.Response(404))
    llm = EngineLLM(BASE)
    assert llm.metadata.context_window == 3900  # fallback, no exception
    with pytest.raises(EngineDetectionError, match="pass engine="):
        llm.chat(USER)
    router.get("http://down.test/info").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(EngineUnavailableError):
        EngineLLM("http://down.test").chat(USER)


def test_engine_given_skips_probing(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "llamacpp", BASE)
    llm = EngineLLM(BASE, engine="llamacpp", context_window=1024, model="m")
    assert llm.chat(USER).message.content == "hi there"
    assert llm.metadata.context_window == 1024
    assert server.probes == []


async def test_async_first_call_detects_with_async_probes(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "vllm", BASE, content="a b c")
    llm = EngineLLM(BASE)
    assert (await llm.achat(USER)).message.content == "a b c"
    assert llm.engine == "vllm"
    deltas = [r.delta async for r in await llm.astream_chat(USER)]
    assert "".join(d or "" for d in deltas) == "a b c"
    assert (await llm.acomplete("x", formatted=True)).text == "a b c"
    probes = len(server.probes)
    assert llm.chat(USER).message.content == "a b c"
    assert len(server.probes) == probes


def test_llamacpp_named_tool_choice_is_that_tool_required(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "llamacpp", BASE, content="", tool_calls=_call("mul", '{"a": 2, "b": 3}'))
    llm = EngineLLM(BASE)
    response = llm.chat_with_tools(_tools(), user_msg="2*3?", tool_choice="mul")
    (selection,) = llm.get_tool_calls_from_response(response)
    assert selection.tool_name == "mul" and selection.tool_kwargs == {"a": 2, "b": 3}
    body = server.last_body
    assert [t["function"]["name"] for t in body["tools"]] == ["mul"]
    assert body["tool_choice"] == "required"
    # the engine was unknown when the tool call was prepared: parallel_tool_calls decided per request
    assert body["parallel_tool_calls"] is False
    assert not any(k.startswith("_") for k in body)


def test_tgi_auto_mode_sends_no_parallel_tool_calls(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "tgi", BASE, content="", tool_calls=_call("add", '{"a": 1, "b": 2}'))
    EngineLLM(BASE).chat_with_tools(_tools(), user_msg="1+2?")
    body = server.last_body
    assert "parallel_tool_calls" not in body and not any(k.startswith("_") for k in body)
    assert body["tool_choice"] == "auto"


def test_tgi_structured_predict_is_a_tgi_grammar(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "tgi", BASE, content='{"city": "Paris", "celsius": 21}')
    result = EngineLLM(BASE).structured_predict(Weather, PromptTemplate("Weather in {city}?"), city="Paris")
    assert result == Weather(city="Paris", celsius=21)
    fmt = server.last_body["response_format"]
    assert fmt["type"] == "json" and set(fmt["value"]["properties"]) == {"city", "celsius"}


def test_engine_parameters_go_through_additional_kwargs(router: respx.MockRouter) -> None:
    vllm = FakeEngine(router, "vllm", BASE)
    EngineLLM(BASE, additional_kwargs={"top_k": 5}).chat(USER)
    assert vllm.last_body["top_k"] == 5
    tgi = FakeEngine(router, "tgi", "http://tgi.test")
    with pytest.raises(InvalidRequestError, match="top_k"):
        EngineLLM("http://tgi.test", additional_kwargs={"top_k": 5}).chat(USER)
    assert tgi.posts == []


def test_pickling_and_copies(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "llamacpp", BASE)
    llm = EngineLLM(BASE, temperature=0.2)
    assert pickle.loads(pickle.dumps(llm)).engine is None  # not detected yet: still lazy
    llm.chat(USER)
    clone = pickle.loads(pickle.dumps(llm))
    probes = len(server.probes)
    assert clone.engine == "llamacpp" and clone.chat(USER).message.content == "hi there"
    assert len(server.probes) == probes  # the detected engine travelled with it
    assert copy.deepcopy(llm).client is llm.client


# ---- ready clients and pools --------------------------------------------------------------------------


def test_any_client_goes_to_the_auto_class(router: respx.MockRouter) -> None:
    server = FakeEngine(router, "vllm", BASE)
    client = VLLMClient(BASE, model="m")
    llm = EngineLLM(client=client)
    assert llm.client is client and llm.engine == "vllm" and llm.model == "m"
    assert llm.chat(USER).message.content == "hi there" and server.probes == []
    with pytest.raises(TypeError, match="EnginePool"):
        EngineLLM(client=client, engine="tgi")
    with pytest.raises(TypeError, match="EnginePool"):
        EngineLLM(client="http://not-a-client")  # type: ignore[arg-type]


@pytest.mark.parametrize("engine", [None, "vllm"])
async def test_pool_of_two_replicas(router: respx.MockRouter, engine: str | None) -> None:
    servers = [FakeEngine(router, "vllm", url, content="one two") for url in REPLICAS]
    pool = EnginePool(list(REPLICAS), engine=engine)
    llm = EngineLLM(client=pool, temperature=0)
    assert llm.client is pool and llm.base_url == ",".join(REPLICAS)
    assert [llm.chat(USER).message.content for _ in range(2)] == ["one two"] * 2
    assert [len(s.posts) for s in servers] == [1, 1]  # least busy, ties rotate
    last = list(llm.stream_chat(USER))[-1]
    assert last.message.content == "one two" and last.raw["usage"]["completion_tokens"] == 2
    assert "".join([r.delta or "" async for r in await llm.astream_chat(USER)]) == "one two"
    assert (await llm.achat(USER)).message.content == "one two"
    assert all(s.last_body["temperature"] == 0 for s in servers)
    assert llm.metadata.context_window == 2048  # the server info, through the pool
    assert llm.to_payload()["engine"] == "vllm"
    assert pool.stats().successes == 6
    assert copy.deepcopy(llm).client is pool
    with pytest.raises(TypeError, match="EnginePool"):
        pickle.dumps(llm)
    await pool.aclose()


def test_pool_tool_call_on_an_unresolved_pool(router: respx.MockRouter) -> None:
    servers = [
        FakeEngine(router, "llamacpp", url, content="", tool_calls=_call("add", '{"a": 1, "b": 2}'))
        for url in REPLICAS
    ]
    llm = EngineLLM(client=EnginePool(list(REPLICAS)))  # engine unknown until a replica is detected
    llm.chat_with_tools(_tools(), user_msg="1+2?")
    llm.chat_with_tools(_tools(), user_msg="1+2?")
    sent = [json.loads(c.request.content) for c in router.calls if c.request.method == "POST"]
    assert len(sent) == 2 == sum(len(s.posts) for s in servers)
    assert all(not any(k.startswith("_") for k in b) for b in sent)
    # The pool resolves its replicas inside the first request, so that one cannot know the engine takes
    # parallel_tool_calls (a single call is still enforced on the response); later ones send it.
    assert "parallel_tool_calls" not in sent[0] and sent[1]["parallel_tool_calls"] is False


def test_engine_classes_take_a_pool_of_their_engine(router: respx.MockRouter) -> None:
    FakeEngine(router, "llamacpp", REPLICAS[0])
    FakeEngine(router, "llamacpp", REPLICAS[1])
    pool = EnginePool(list(REPLICAS), engine="llamacpp")
    llm = LlamaCpp(client=pool, top_k=4)
    assert llm.chat(USER).message.content == "hi there"
    with pytest.raises(TypeError, match="TGIClient"):
        TGI(client=pool)
