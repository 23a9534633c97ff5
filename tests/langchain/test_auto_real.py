"""``ChatEngine`` and ``EngineTextLLM`` against the real llama-server: the engine detected on first use, and a
pool of two replicas (two URLs of the same server) behind the chat model. The scripted model answers plain
chat with " Hello world."."""

from __future__ import annotations

import pytest
from langchain_selfhosted import ChatEngine
from langchain_selfhosted import EngineTextLLM

from engine_clients import EnginePool
from engine_clients.testing import EngineServer

pytestmark = pytest.mark.integration


def test_chat_engine_detects_llama_server(llama_server: EngineServer) -> None:
    model = ChatEngine(base_url=llama_server.base_url, temperature=0, max_tokens=16)
    assert model.active_engine is None  # nothing asked yet
    message = model.invoke("hi")
    assert str(message.content).strip() == "Hello world."
    assert model.active_engine == "llamacpp"
    assert message.response_metadata["model_name"] == llama_server.model
    assert message.usage_metadata is not None and message.usage_metadata["output_tokens"] > 0
    assert "".join(str(c.content) for c in model.stream("hi")).strip() == "Hello world."


async def test_chat_engine_async_detection(llama_server: EngineServer) -> None:
    model = ChatEngine(base_url=llama_server.base_url, temperature=0, max_tokens=16)
    assert str((await model.ainvoke("hi")).content).strip() == "Hello world."
    assert model.active_engine == "llamacpp"


def test_text_llm_detects_llama_server(llama_server: EngineServer) -> None:
    llm = EngineTextLLM(base_url=llama_server.base_url, temperature=0, max_tokens=16)
    assert llm.invoke("\n").strip() == "Hello world."  # the native /completion route: no chat template
    assert llm.active_engine == "llamacpp"


@pytest.mark.parametrize("engine", [None, "llamacpp"])
def test_pool_of_two_urls(llama_server: EngineServer, engine: str | None) -> None:
    url = llama_server.base_url
    # two replicas that are the same server under two names
    replicas = [url, url.replace("127.0.0.1", "localhost")] if "127.0.0.1" in url else [url, url + "/"]
    with EnginePool(replicas, engine=engine) as pool:
        model = ChatEngine(client=pool, temperature=0, max_tokens=16)
        answers = [str(model.invoke("hi").content).strip() for _ in range(4)]
        assert answers == ["Hello world."] * 4
        assert "".join(str(c.content) for c in model.stream("hi")).strip() == "Hello world."
        stats = pool.stats()
        assert stats.failures == 0 and all(r.successes >= 2 for r in stats.replicas)
        assert model.active_engine == "llamacpp"
