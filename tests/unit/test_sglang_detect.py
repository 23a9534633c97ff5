"""Detection with SGLang as the fourth engine: every engine's discovery answers mocked (the real shapes of
``tests/unit/test_detect.py``, plus TEI and SGLang 0.5.23's ``http_server.py``), sync and async. SGLang is
never taken for vLLM (its ``/v1/models`` has ``max_model_len`` too) and no other engine for SGLang, and the
other engines' detection never asks SGLang's own routes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

from engine_clients import SGLangClient
from engine_clients import aconnect
from engine_clients import adetect_engine
from engine_clients import client_class
from engine_clients import connect
from engine_clients import detect_engine
from engine_clients._detect import SGLANG_PROBE_PATHS
from engine_clients._detect import EngineDetectionError
from engine_clients.testing.fake_sglang import start_fake_sglang
from tests.unit.test_detect import LLAMA_LOADING
from tests.unit.test_detect import URL
from tests.unit.test_detect import mock_llama
from tests.unit.test_detect import mock_tgi
from tests.unit.test_detect import mock_vllm

SGLANG_MODELS = {
    "object": "list",
    "data": [{"id": "Qwen/Qwen3-8B", "object": "model", "created": 1767225600, "owned_by": "sglang",
              "root": "Qwen/Qwen3-8B", "parent": None, "max_model_len": 40960}],
}  # fmt: skip
SGLANG_MODEL_INFO = {"model_path": "Qwen/Qwen3-8B", "served_model_name": "Qwen/Qwen3-8B", "is_generation": True,
                     "reasoning_parser": "qwen3", "tool_call_parser": "qwen25"}  # fmt: skip
TEI_INFO = {"model_id": "BAAI/bge-small-en-v1.5", "model_type": {"embedding": {"pooling": "cls"}},
            "max_client_batch_size": 32, "version": "1.9.3"}  # fmt: skip


def mock_tei(router: respx.MockRouter) -> None:
    router.get(f"{URL}/info").respond(200, json=TEI_INFO)
    router.get(url__startswith=URL).respond(404)


def mock_sglang(router: respx.MockRouter, *, key: str | None = None, models_status: int = 200) -> None:
    """http_server.py: /v1/models, /model_info, /server_info (+ older names), /health, GET /; FastAPI's 404
    elsewhere; with --api-key every route but /health* answers 401 {"error": "Unauthorized"} (utils/auth.py)."""
    answers: dict[str, httpx.Response] = {
        "/v1/models": httpx.Response(models_status, json=SGLANG_MODELS if models_status == 200 else {}),
        "/model_info": httpx.Response(200, json=SGLANG_MODEL_INFO),
        "/get_model_info": httpx.Response(200, json=SGLANG_MODEL_INFO),
        "/server_info": httpx.Response(200, json={"version": "0.5.23"}),
        "/health": httpx.Response(200),
        "/": httpx.Response(200, json="SGLang is running"),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if key and not path.startswith("/health") and request.headers.get("authorization") != f"Bearer {key}":
            return httpx.Response(401, json={"error": "Unauthorized"})
        return answers.get(path, httpx.Response(404, json={"detail": "Not Found"}))

    router.get(url__startswith=URL).mock(side_effect=answer)


def mock_llama_loading(router: respx.MockRouter) -> None:
    router.get(url__startswith=URL).respond(503, json=LLAMA_LOADING)


Mock = Callable[[respx.MockRouter], None]
MATRIX: list[tuple[str, Mock, dict[str, Any]]] = [
    ("tgi", mock_tgi, {}),
    ("tei", mock_tei, {}),
    ("vllm", mock_vllm, {}),
    ("vllm", lambda r: mock_vllm(r, keyed=True), {}),
    ("llamacpp", mock_llama, {}),
    ("llamacpp", lambda r: mock_llama(r, keyed=True), {}),
    ("llamacpp", mock_llama_loading, {}),
    ("sglang", mock_sglang, {}),
    ("sglang", lambda r: mock_sglang(r, key="sk-1"), {"api_key": "sk-1"}),
]
IDS = ["tgi", "tei", "vllm", "vllm-keyed", "llamacpp", "llamacpp-keyed", "llamacpp-loading", "sglang",
       "sglang-keyed"]  # fmt: skip


def asked(router: respx.MockRouter) -> list[str]:
    return [call.request.url.path for call in router.calls]


@pytest.mark.parametrize(("engine", "mock", "kw"), MATRIX, ids=IDS)
def test_detection_matrix_sync(engine: str, mock: Mock, kw: dict[str, Any]) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock(router)
        assert detect_engine(URL, **kw) == engine
        if engine != "sglang":
            assert not set(SGLANG_PROBE_PATHS) & set(asked(router))  # no extra request for the others
        else:
            assert asked(router) == ["/info", "/props", "/version", "/v1/models"]


@pytest.mark.parametrize(("engine", "mock", "kw"), MATRIX, ids=IDS)
async def test_detection_matrix_async(engine: str, mock: Mock, kw: dict[str, Any]) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock(router)
        assert await adetect_engine(URL, **kw) == engine
        assert not set(SGLANG_PROBE_PATHS) & set(asked(router))


def test_sglang_is_not_taken_for_vllm() -> None:
    """SGLang's ModelCard carries max_model_len, the vLLM hint: the owner is read first."""
    with respx.mock(assert_all_called=False) as router:
        mock_sglang(router)
        client = connect(URL)
    assert type(client) is SGLangClient and client.engine == "sglang"


@pytest.mark.parametrize("models_status", [500, 503])
def test_sglang_own_routes_settle_an_unreadable_models_list(models_status: int) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_sglang(router, models_status=models_status)
        assert detect_engine(URL) == "sglang"
        assert asked(router)[-1] == "/model_info"


async def test_sglang_root_route_settles_it_async() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/").respond(200, json="SGLang is running")
        router.get(url__startswith=URL).respond(500, json={"detail": "Internal Server Error"})
        assert await adetect_engine(URL) == "sglang"


def test_a_keyed_sglang_without_the_key_is_not_guessed() -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_sglang(router, key="sk-1")
        with pytest.raises(EngineDetectionError):
            detect_engine(URL)
        assert not set(SGLANG_PROBE_PATHS) & set(asked(router))  # every answer was 401/404: nothing to gain


def test_other_model_info_shapes_are_not_sglang() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/model_info").respond(200, json={"model": "x"})
        router.get(f"{URL}/").respond(200, text="<html>llama.cpp</html>")
        router.get(url__startswith=URL).respond(500, json={"detail": "x"})
        with pytest.raises(EngineDetectionError):
            detect_engine(URL)


def test_the_fake_server_is_detected_over_real_http() -> None:
    with start_fake_sglang() as srv:
        client = connect(srv.base_url + "/v1")
        assert type(client) is SGLangClient and client.base_url == srv.base_url
        assert client.generate("Hi").content == "Hello world."
        paths = [p for m, p, _ in srv.requests if m == "GET"]
    assert paths == ["/info", "/props", "/version", "/v1/models"]


async def test_the_fake_server_is_detected_async() -> None:
    with start_fake_sglang() as srv:
        client = await aconnect(srv.base_url)
        assert type(client) is SGLangClient
        assert (await client.agenerate("Hi")).content == "Hello world."
        await client.aclose()


def test_names_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert client_class("sglang") is SGLangClient and client_class(" SGLang ") is SGLangClient
    for var in ("TGI_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "TEI_BASE_URL", "SGLANG_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SGLANG_BASE_URL", URL)
    monkeypatch.setenv("SGLANG_API_KEY", "sk-env")
    client = connect()  # the variable names the engine: no probing
    assert type(client) is SGLangClient and client.base_url == URL
    assert client.api_key is not None and client.api_key.get_secret_value() == "sk-env"


def test_engine_pool_detects_sglang_replicas() -> None:
    from engine_clients import EnginePool

    with start_fake_sglang() as a, start_fake_sglang() as b:
        pool = EnginePool([a.base_url, b.base_url])
        try:
            assert pool.generate("Hi").content == "Hello world."
            assert pool.chat("Hi").content == "Hello world."
            assert pool.engine == "sglang"
        finally:
            pool.close()
