"""``EngineLLM`` in auto mode against the real llama-server: the engine detected on first use, and a pool of
two replicas (two URLs of the same server). The scripted model answers plain chat with " Hello world."."""

from __future__ import annotations

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.llms.selfhosted import EngineLLM

from engine_clients import EnginePool
from engine_clients.testing import EngineServer

pytestmark = pytest.mark.integration

USER = [ChatMessage(role="user", content="hi")]


def _two_urls(url: str) -> list[str]:
    """Two replicas that are the same server under two names."""
    return [url, url.replace("127.0.0.1", "localhost")] if "127.0.0.1" in url else [url, url + "/"]


def test_engine_llm_detects_llama_server(llama_server: EngineServer) -> None:
    llm = EngineLLM(llama_server.base_url, temperature=0, max_tokens=16)
    assert llm.engine is None  # nothing asked yet
    response = llm.chat(USER)
    assert (response.message.content or "").strip() == "Hello world."
    assert llm.engine == "llamacpp"
    meta = llm.metadata
    assert meta.model_name == llama_server.model and meta.context_window > 0
    assert list(llm.stream_chat(USER))[-1].message.content.strip() == "Hello world."  # type: ignore[union-attr]


async def test_engine_llm_async_detection(llama_server: EngineServer) -> None:
    llm = EngineLLM(llama_server.base_url, temperature=0, max_tokens=16)
    assert ((await llm.achat(USER)).message.content or "").strip() == "Hello world."
    assert llm.engine == "llamacpp"


@pytest.mark.parametrize("engine", [None, "llamacpp"])
async def test_pool_of_two_urls(llama_server: EngineServer, engine: str | None) -> None:
    pool = EnginePool(_two_urls(llama_server.base_url), engine=engine)
    try:
        llm = EngineLLM(client=pool, temperature=0, max_tokens=16)
        answers = [(llm.chat(USER).message.content or "").strip() for _ in range(3)]
        answers.append(((await llm.achat(USER)).message.content or "").strip())
        assert answers == ["Hello world."] * 4
        stats = pool.stats()
        assert stats.failures == 0 and all(r.successes >= 2 for r in stats.replicas)
        assert llm.to_payload()["engine"] == "llamacpp"
    finally:
        await pool.aclose()
