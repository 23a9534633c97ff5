"""Engine auto-detection: ``connect``/``aconnect`` probe the discovery routes (mocked with the engines' real
answer shapes, ENGINES.md 2.1, 3.1, 4.1 and 4.5) and return the right client."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import respx

from engine_clients import EngineError
from engine_clients import EngineUnavailableError
from engine_clients import LlamaCppClient
from engine_clients import TGIClient
from engine_clients import VLLMClient
from engine_clients._detect import EngineDetectionError
from engine_clients._detect import aconnect
from engine_clients._detect import adetect_engine
from engine_clients._detect import client_class
from engine_clients._detect import connect
from engine_clients._detect import detect_engine
from engine_clients.errors import InvalidRequestError

URL = "http://engine.test:8000"

TGI_INFO = {
    "model_id": "meta-llama/Llama-3.1-8B-Instruct",
    "model_sha": "0e9e39f249a16976918f6564b8830bc894c89659",
    "model_pipeline_tag": "text-generation",
    "max_concurrent_requests": 128,
    "max_best_of": 2,
    "max_stop_sequences": 4,
    "max_input_tokens": 4095,
    "max_total_tokens": 4096,
    "validation_workers": 2,
    "max_client_batch_size": 4,
    "router": "text-generation-router",
    "version": "3.3.6-dev0",
    "sha": "db931fcf",
    "docker_label": "sha-db931fcf",
}
TGI_MODELS = {
    "object": "list",
    "data": [{"id": TGI_INFO["model_id"], "object": "model", "created": 0, "owned_by": TGI_INFO["model_id"]}],
}
VLLM_VERSION = {"version": "0.32.0"}
VLLM_MODELS = {
    "object": "list",
    "data": [
        {
            "id": "scripted-tiny",
            "object": "model",
            "created": 1763700000,
            "owned_by": "vllm",
            "root": "/models/scripted-tiny",
            "parent": None,
            "max_model_len": 1024,
            "permission": [{"id": "modelperm-1", "object": "model_permission", "allow_sampling": True}],
        }
    ],
}
LLAMA_PROPS = {
    "default_generation_settings": {"n_ctx": 1024, "params": {"temperature": 0.8, "top_k": 40}},
    "total_slots": 4,
    "model_path": "/models/scripted.gguf",
    "chat_template": "{{ messages }}",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "build_info": "b11434-0123abc",
}
LLAMA_MODELS = {
    "object": "list",
    "data": [
        {
            "id": "scripted-tiny",
            "object": "model",
            "created": 1763700000,
            "owned_by": "llamacpp",
            "meta": {"n_vocab": 64, "n_ctx_train": 4096, "n_params": 123, "size": 456},
        }
    ],
}
LLAMA_LOADING = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
LLAMA_UNAUTHORIZED = {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}
NOT_FOUND = httpx.Response(404, text="Not Found")


def mock_tgi(router: respx.MockRouter) -> None:
    router.get(f"{URL}/info").respond(200, json=TGI_INFO)
    router.get(f"{URL}/v1/models").respond(200, json=TGI_MODELS)
    router.get(url__startswith=URL).mock(return_value=NOT_FOUND)


def mock_vllm(router: respx.MockRouter, *, keyed: bool = False) -> None:
    router.get(f"{URL}/version").respond(200, json=VLLM_VERSION)
    if keyed:  # vLLM's --api-key guards only /v1 routes
        router.get(f"{URL}/v1/models").respond(401, json={"error": "Unauthorized"})
    else:
        router.get(f"{URL}/v1/models").respond(200, json=VLLM_MODELS)
    router.get(url__startswith=URL).respond(404, json={"detail": "Not Found"})


def mock_llama(router: respx.MockRouter, *, keyed: bool = False) -> None:
    if keyed:  # /props is guarded, /v1/models is open
        router.get(f"{URL}/props").respond(401, json=LLAMA_UNAUTHORIZED)
    else:
        router.get(f"{URL}/props").respond(200, json=LLAMA_PROPS)
    router.get(f"{URL}/v1/models").respond(200, json=LLAMA_MODELS)
    router.get(url__startswith=URL).respond(
        404, json={"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}
    )


CASES: list[tuple[str, Any, type[Any]]] = [
    ("tgi", mock_tgi, TGIClient),
    ("vllm", mock_vllm, VLLMClient),
    ("llamacpp", mock_llama, LlamaCppClient),
    ("vllm", lambda r: mock_vllm(r, keyed=True), VLLMClient),
    ("llamacpp", lambda r: mock_llama(r, keyed=True), LlamaCppClient),
]
IDS = ["tgi", "vllm", "llamacpp", "vllm-keyed", "llamacpp-keyed"]


@pytest.mark.parametrize(("engine", "mock", "cls"), CASES, ids=IDS)
def test_connect_detects(engine: str, mock: Any, cls: type[Any]) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock(router)
        client = connect(URL, api_key="sk-probe", model="m")
        assert type(client) is cls and client.engine == engine
        assert client.base_url == URL and client.model == "m"
        assert detect_engine(URL) == engine
    client.close()


@pytest.mark.parametrize(("engine", "mock", "cls"), CASES, ids=IDS)
async def test_aconnect_detects(engine: str, mock: Any, cls: type[Any]) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock(router)
        client = await aconnect(URL + "/")
        assert type(client) is cls and client.engine == engine
        assert await adetect_engine(URL) == engine
    await client.aclose()


def test_llamacpp_detected_while_loading() -> None:
    """llama-server answers 503 ``unavailable_error`` on every route while it loads: that shape is enough."""
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).respond(503, json=LLAMA_LOADING)
        assert type(connect(URL)) is LlamaCppClient


async def test_llamacpp_detected_while_loading_async() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).respond(503, json=LLAMA_LOADING)
        assert type(await aconnect(URL)) is LlamaCppClient


def test_tgi_unhealthy_503_is_not_llamacpp() -> None:
    """TGI's own 503 body (``{"error": "unhealthy", "error_type": "healthcheck"}``) is not the llama.cpp shape."""
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).respond(503, json={"error": "unhealthy", "error_type": "healthcheck"})
        with pytest.raises(EngineDetectionError) as info:
            connect(URL)
    assert info.value.observed["/info"] == 503


def test_explicit_engine_skips_probing() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.get(url__startswith=URL).respond(200, json=TGI_INFO)
        for name, cls in [("tgi", TGIClient), ("vllm", VLLMClient), ("llamacpp", LlamaCppClient)]:
            assert type(connect(URL, engine=name)) is cls
        assert type(connect(URL, engine="llama.cpp")) is LlamaCppClient
        assert not route.called


def test_unknown_engine_name() -> None:
    with pytest.raises(InvalidRequestError, match="unknown engine"):
        client_class("ollama")


def test_unrecognised_server_is_a_typed_error() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/v1/models").respond(
            200, json={"object": "list", "data": [{"id": "gpt", "object": "model", "owned_by": "openai"}]}
        )
        router.get(url__startswith=URL).respond(404, json={"detail": "Not Found"})
        with pytest.raises(EngineDetectionError) as info:
            connect(URL)
    err = info.value
    assert isinstance(err, EngineError)
    assert "engine=" in str(err) and URL in str(err)
    assert err.observed == {"/info": 404, "/props": 404, "/version": 404, "/v1/models": 200}


def test_html_and_garbage_answers_are_not_engines() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).respond(200, text="<html>hello</html>")
        with pytest.raises(EngineDetectionError):
            connect(URL)


def test_nothing_listening_is_unavailable() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.get(url__startswith=URL).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EngineUnavailableError, match="no server answered"):
            connect(URL)
    assert route.call_count == 1  # a refused connection ends the probing at once


async def test_nothing_listening_is_unavailable_async() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EngineUnavailableError):
            await aconnect(URL)


def test_probes_send_the_api_key_and_the_probe_timeout() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=TGI_INFO)

    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).mock(side_effect=record)
        connect(URL, api_key="sk-probe", probe_timeout=0.5)
    assert seen and all(r.headers["authorization"] == "Bearer sk-probe" for r in seen)
    assert seen[0].extensions["timeout"] == {"connect": 0.5, "read": 0.5, "write": 0.5, "pool": 0.5}


def test_probes_stop_at_a_timeout_bound() -> None:
    """A server that never answers costs at most one probe timeout per route."""
    calls = 0

    def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout("timed out", request=request)

    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).mock(side_effect=slow)
        t = time.monotonic()
        with pytest.raises(EngineUnavailableError):
            connect(URL, probe_timeout=0.05)
    assert calls == 4 and time.monotonic() - t < 2


def test_openai_style_base_url_is_normalised() -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router)
        client = connect(URL + "/v1")
    assert type(client) is VLLMClient and client.base_url == URL


def test_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TGI_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InvalidRequestError, match="none of"):
        connect()
    monkeypatch.setenv("LLAMACPP_BASE_URL", URL)
    client = connect()  # the variable names the engine: no probing needed
    assert type(client) is LlamaCppClient and client.base_url == URL
    monkeypatch.setenv("VLLM_BASE_URL", URL)
    with pytest.raises(InvalidRequestError, match="several"):
        connect()


def test_redirects_are_not_followed_while_probing() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(url__startswith=URL).respond(307, headers={"location": "http://elsewhere.test/info"})
        other = router.get(url__startswith="http://elsewhere.test").respond(200, json=TGI_INFO)
        with pytest.raises(EngineDetectionError):
            connect(URL, api_key="sk-secret")
    assert not other.called
