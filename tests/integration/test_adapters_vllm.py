"""LoRA adapters on real vLLM (CPU, 0.32): selection by name, listing with ``parent``, runtime loading and
unloading, and the unknown-adapter error, through the package.

One server for the module: the scripted HF model with ``--enable-lora --max-loras 2 --max-lora-rank 8
--lora-modules lora=<PEFT dir>`` and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``. The adapters (PEFT,
``target_modules: ["lm_head"]``, written by ``_build_lora.py``) make the model answer " Hello LoRA." or
" Hello Bye." instead of " Hello world.". vLLM starts in 45-100 s here with LoRA on.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from engine_clients import AdapterNotFoundError
from engine_clients import BadRequestError
from engine_clients import End
from engine_clients import InvalidRequestError
from engine_clients import NotFoundError
from engine_clients import VLLMClient
from engine_clients.testing import DEFAULT_MODEL_NAME
from engine_clients.testing import EngineServer
from engine_clients.testing import lora_answer
from engine_clients.testing import scripted_lora_peft
from engine_clients.testing import start_vllm_lora_server
from tests.support.doc_examples import example
from tests.support.doc_examples import substitute

PLAIN = " Hello world."
LORA, BYE = lora_answer("LoRA"), lora_answer("Bye")
PROMPT = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
_OTHER_VLLM_LIMIT = 1  # memory: start this server only while at most one other vLLM runs
_WAIT_FOR_OTHERS_S = 60.0  # in a test run the session vLLMs stay up: never wait long for them


def _other_vllms() -> int:
    found = subprocess.run(
        ["pgrep", "-f", "vllm.entrypoints|vllm serve"], capture_output=True, text=True, check=False
    )
    return len(found.stdout.split())


@pytest.fixture(scope="module")
def lora_vllm(vllm_provisioned: None) -> Iterator[EngineServer]:
    deadline = time.monotonic() + _WAIT_FOR_OTHERS_S
    while _other_vllms() > _OTHER_VLLM_LIMIT and time.monotonic() < deadline:
        time.sleep(20)
    bye = scripted_lora_peft("Bye")  # built before the server starts; loaded at runtime by a test
    start = time.monotonic()
    with start_vllm_lora_server(("LoRA",)) as server:
        print(f"\nvLLM with --enable-lora ready in {time.monotonic() - start:.1f} s")
        server.bye_path = str(bye)  # type: ignore[attr-defined]
        yield server


@pytest.fixture
def client(lora_vllm: EngineServer) -> Iterator[VLLMClient]:
    with VLLMClient(lora_vllm.base_url, model=DEFAULT_MODEL_NAME) as c:
        yield c


def test_listing_with_parent(client: VLLMClient) -> None:
    adapters = client.adapters()
    assert [(a.name, a.parent, a.path) for a in adapters] == [
        ("lora", DEFAULT_MODEL_NAME, str(scripted_lora_peft("LoRA")))
    ]
    models = client.models()
    assert [(m.id, m.state, m.parent, m.context_length) for m in models] == [
        (DEFAULT_MODEL_NAME, "loaded", None, 8192),
        ("lora", "loaded", DEFAULT_MODEL_NAME, None),
    ]


def test_selection_by_name_changes_the_answer(client: VLLMClient) -> None:
    assert client.chat("hi", temperature=0).content == PLAIN
    assert client.chat("hi", adapter="lora", temperature=0).content == LORA
    assert client.generate(PROMPT, adapter="lora", temperature=0, max_tokens=16).content == LORA
    events = list(client.chat_stream("hi", adapter="lora", temperature=0))
    assert isinstance(events[-1], End) and events[-1].content == LORA
    with pytest.raises(InvalidRequestError, match="adapter_scale"):
        client.chat("hi", adapter="lora", adapter_scale=0.5)


def test_unknown_adapter_is_an_error_never_the_base_model(client: VLLMClient) -> None:
    with pytest.raises(AdapterNotFoundError) as caught:
        client.chat("hi", adapter="nope")
    assert caught.value.status_code == 404 and caught.value.adapter == "nope"
    assert "does not exist" in str(caught.value)
    with pytest.raises(AdapterNotFoundError):
        list(client.chat_stream("hi", adapter="nope"))
    with pytest.raises(AdapterNotFoundError):
        client.generate(PROMPT, adapter="nope", max_tokens=4)


def test_runtime_load_and_unload(client: VLLMClient, lora_vllm: EngineServer) -> None:
    path = lora_vllm.bye_path  # type: ignore[attr-defined]
    client.unload_adapter("bye") if "bye" in {a.name for a in client.adapters()} else None
    client.load_adapter("bye", path)  # vLLM answers 200 with plain text
    try:
        assert {a.name for a in client.adapters()} == {"lora", "bye"}
        assert client.chat("hi", adapter="bye", temperature=0).content == BYE
        with pytest.raises(BadRequestError, match="already been loaded"):
            client.load_adapter("bye", path)
    finally:
        client.unload_adapter("bye")
    assert [a.name for a in client.adapters()] == ["lora"]
    with pytest.raises(AdapterNotFoundError):
        client.chat("hi", adapter="bye")
    with pytest.raises(NotFoundError, match="cannot be found"):
        client.unload_adapter("bye")
    with pytest.raises(NotFoundError):
        client.load_adapter("missing", "/nonexistent/adapter")


def test_two_adapters_in_flight_at_once(client: VLLMClient, lora_vllm: EngineServer) -> None:
    client.load_adapter("bye", lora_vllm.bye_path)  # type: ignore[attr-defined]

    async def go() -> list[str]:
        async with VLLMClient(lora_vllm.base_url) as c:
            asks = ["lora", "bye"] * 3
            done = await asyncio.gather(*(c.achat("hi", adapter=a, temperature=0) for a in asks))
            return [x.content for x in done]

    try:
        assert asyncio.run(go()) == [LORA, BYE] * 3
    finally:
        client.unload_adapter("bye")


@pytest.mark.xfail(
    reason="vLLM 0.32 CPU: a base-model request batched with lm_head-LoRA requests came back with an adapter's"
    " answer (seen here; sequential base requests are right)",
    strict=False,
)
def test_base_requests_batched_with_adapter_requests(lora_vllm: EngineServer) -> None:
    async def go() -> list[str]:
        async with VLLMClient(lora_vllm.base_url) as c:
            asks = ["lora", None] * 3
            done = await asyncio.gather(*(c.achat("hi", adapter=a, temperature=0) for a in asks))
            return [x.content for x in done]

    assert asyncio.run(go()) == [LORA, PLAIN] * 3


def test_wire_replies_are_plain_text(lora_vllm: EngineServer) -> None:
    """What the client reads: ``/v1/load_lora_adapter`` answers 200 text ("Success: LoRA adapter 'x' added
    successfully."), errors as JSON."""
    url = lora_vllm.base_url
    body = {"lora_name": "bye", "lora_path": lora_vllm.bye_path}  # type: ignore[attr-defined]
    loaded = httpx.post(f"{url}/v1/load_lora_adapter", json=body, timeout=60)
    assert loaded.status_code == 200 and loaded.text.startswith("Success")
    unloaded = httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "bye"}, timeout=60)
    assert unloaded.status_code == 200 and "removed" in unloaded.text


def test_through_langchain_and_llamaindex(lora_vllm: EngineServer) -> None:
    from langchain_selfhosted import ChatVLLM
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.selfhosted import VLLM

    chat = ChatVLLM(base_url=lora_vllm.base_url, model=DEFAULT_MODEL_NAME, temperature=0, adapter="lora")
    assert chat.invoke("hi").content == LORA
    assert ChatVLLM(base_url=lora_vllm.base_url, temperature=0).invoke("hi", adapter="lora").content == LORA
    with pytest.raises(AdapterNotFoundError):
        chat.invoke("hi", adapter="nope")
    llm = VLLM(base_url=lora_vllm.base_url, model=DEFAULT_MODEL_NAME, temperature=0, adapter="lora")
    assert llm.chat([ChatMessage(role="user", content="hi")]).message.content == LORA


def test_the_readmes_runtime_lora_block_runs(lora_vllm: EngineServer) -> None:
    """README.md's vLLM block as written: its server URL and adapter path replaced by this server's."""
    block = example("vllm-runtime-lora")
    path = lora_vllm.bye_path  # type: ignore[attr-defined]
    code = substitute(block.code, {"http://127.0.0.1:8000": lora_vllm.base_url, "/adapters/support": path})
    exec(compile(code, block.id, "exec"), {"__name__": "__docs__"})  # chat(adapter="support") answered
    with VLLMClient(lora_vllm.base_url) as c:
        assert [a.name for a in c.adapters()] == ["lora"]  # and "support" is unloaded again
