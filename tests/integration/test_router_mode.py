"""llama-server in router mode (``--models-dir`` with two scripted GGUFs, ``--models-max 1``): listing, loading,
unloading, routing by ``model`` and a request while its model loads, through the package.

One router for the module. Each test puts the models in the state it needs first, so the order does not
matter. Each model's instance runs with ``--ctx-size 4096 --parallel 2``: 2,048 tokens per request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine_clients import LlamaCppClient
from engine_clients import ModelInfo
from engine_clients import ModelRequiredError
from engine_clients import NotFoundError
from engine_clients.testing import EngineServer
from engine_clients.testing import scripted_models_dir
from engine_clients.testing import start_llama_router

PLAIN = " Hello world."
NAMES = ("alpha", "beta")


@pytest.fixture(scope="module")
def router(llamacpp_provisioned: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    folder = scripted_models_dir(tmp_path_factory.mktemp("models"), NAMES)
    start = time.monotonic()
    with start_llama_router(folder, models_max=1) as server:
        print(f"\nrouter-mode llama-server ready in {time.monotonic() - start:.1f} s")
        yield server


@pytest.fixture
def client(router: EngineServer) -> Iterator[LlamaCppClient]:
    with LlamaCppClient(router.base_url) as c:
        yield c


def _states(client: LlamaCppClient) -> dict[str, str]:
    return {m.id: m.state for m in client.models()}


def _until(client: LlamaCppClient, name: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _states(client)[name] != state:
        assert time.monotonic() < deadline, f"{name} not {state} after {timeout} s: {_states(client)}"
        time.sleep(0.1)


def _unload_all(client: LlamaCppClient) -> None:
    for name in NAMES:
        client.unload_model(name)  # a no-op for a model that is not running
    for name in NAMES:
        _until(client, name, "unloaded")


def test_models_are_listed_with_their_state(client: LlamaCppClient, router: EngineServer) -> None:
    _unload_all(client)
    models = client.models()
    assert all(isinstance(m, ModelInfo) for m in models)
    assert [(m.id, m.state, m.context_length) for m in models] == [
        ("alpha", "unloaded", None),
        ("beta", "unloaded", None),
    ]
    # the OpenAI route lists the same, and /props says it is a router
    assert (
        httpx.get(f"{router.base_url}/v1/models", timeout=10).json()["data"][0]["status"]["value"]
        == "unloaded"
    )
    assert httpx.get(f"{router.base_url}/props", timeout=10).json()["role"] == "router"


def test_info_reports_no_limits_rather_than_zero(client: LlamaCppClient, router: EngineServer) -> None:
    info = client.info()
    assert (info.model, info.max_input_tokens, info.max_total_tokens, info.max_output_tokens) == (
        None,
        None,
        None,
        None,
    )
    assert info.raw["router"] is True
    client.load_model("alpha")
    with LlamaCppClient(router.base_url, model="alpha") as selected:
        info = selected.info()  # the loaded model's instance: its per-request context
    assert (info.model, info.max_input_tokens, info.max_total_tokens) == ("alpha", 2048, 2048)


def test_a_request_routes_by_model_and_autoloads_it(client: LlamaCppClient) -> None:
    _unload_all(client)
    completion = client.chat("hi", model="beta", temperature=0)
    assert (completion.content, completion.model) == (PLAIN, "beta")
    assert _states(client)["beta"] == "loaded"
    # with --models-max 1 the next model evicts the least recently used one
    assert (
        client.generate(
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", model="alpha", max_tokens=8
        ).content
        == PLAIN
    )
    _until(client, "beta", "unloaded")
    assert _states(client)["alpha"] == "loaded"


def test_load_and_unload(client: LlamaCppClient) -> None:
    _unload_all(client)
    client.load_model("beta")  # waits until the instance answers
    assert _states(client)["beta"] == "loaded"
    client.load_model("beta")  # already running: a no-op
    client.unload_model("beta")
    _until(client, "beta", "unloaded")  # the instance stops in the background
    client.unload_model("beta")  # not running: a no-op
    with pytest.raises(NotFoundError):
        client.load_model("nope")


def test_a_request_during_loading_waits(client: LlamaCppClient) -> None:
    _unload_all(client)
    client.load_model("alpha", wait=False)
    seen = _states(client)["alpha"]  # the router answers the load at once, before the instance is up
    started = time.monotonic()
    completion = client.chat("hi", model="alpha", temperature=0)  # held by the router until alpha is ready
    print(
        f"\nstate right after the load: {seen}; the request answered after {time.monotonic() - started:.2f} s"
    )
    assert seen in ("loading", "loaded")
    assert completion.content == PLAIN


def test_request_without_model_names_the_router_models(client: LlamaCppClient) -> None:
    with pytest.raises(ModelRequiredError) as caught:
        client.chat("hi")
    assert caught.value.models == NAMES
    assert "router" in str(caught.value) and "alpha, beta" in str(caught.value)
    with pytest.raises(NotFoundError, match="'nope' not found"):
        client.chat("hi", model="nope")


def test_async_listing_and_streams_by_model(router: EngineServer) -> None:
    async def go() -> tuple[list[str], str]:
        async with LlamaCppClient(router.base_url, model="beta") as client:
            ids = [m.id for m in await client.amodels()]
            text = ""
            async for event in client.achat_stream("hi", temperature=0):
                text += getattr(event, "text", "")
            return ids, text

    assert asyncio.run(go()) == (list(NAMES), PLAIN)


def test_models_dir_fixture_links_the_scripted_model(tmp_path: Path) -> None:
    folder = scripted_models_dir(tmp_path, ("one",))
    assert (folder / "one.gguf").resolve().is_file()


def test_framework_limits_follow_the_selected_model(client: LlamaCppClient, router: EngineServer) -> None:
    """LangChain's profile and LlamaIndex's metadata read the selected model's context (once it is loaded),
    not the router's, which has none."""
    from langchain_selfhosted import ChatLlamaCpp
    from llama_index.llms.selfhosted import LlamaCpp

    client.load_model("beta")
    _until(client, "beta", "loaded")
    chat = ChatLlamaCpp(base_url=router.base_url, model="beta")
    assert chat.profile is not None and chat.profile["max_input_tokens"] == 2048
    llm = LlamaCpp(base_url=router.base_url, model="beta")
    assert llm.metadata.context_window == 2048 and llm.metadata.model_name == "beta"
