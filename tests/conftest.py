"""Fixtures for tests against real engines (llama.cpp's llama-server and CPU vLLM) with scripted tiny models.

Fixtures (session-scoped, each an ``engine_clients.testing.EngineServer`` with ``.base_url``, ``.model``,
``.api_key``, ``.engine``, ``.log_path``):

* ``llama_server`` - llama-server, scripted GGUF, ``--jinja --parallel 4 --ctx-size 32768`` (8,192 tokens per
  request), no API key;
* ``llama_server_keyed`` - the same model, started with ``--api-key test-secret-key``;
* ``llama_server_thinking`` - the same model with the thinking chat template (the generation prompt opens
  ``<think>``; ``chat_template_kwargs: {"enable_thinking": false}`` closes it) and ``--reasoning-format
  deepseek``: thinking in ``message.reasoning_content`` / ``delta.reasoning_content``;
* ``llama_server_thinking_raw`` - the same with ``--reasoning-format none``: thinking stays in ``content``,
  ``<think>`` and ``</think>`` included;
* ``vllm_server`` - vLLM, scripted HF model, ``--max-model-len 8192``, hermes tool parser, no API key; also a
  reasoning server (``--reasoning-parser qwen3``, thinking template) that answers plainly unless a request
  sends ``chat_template_kwargs: {"enable_thinking": true}`` (or a ``reasoning_effort`` other than "none"):
  then thinking comes back in ``message.reasoning`` / ``delta.reasoning``;
* ``llamacpp_provisioned`` / ``vllm_provisioned`` - no server: the engine and its scripted model are installed.

The scripted models answer " Hello world."; thinking, where on, is "\nThe user says hello.\n" (see
``tests/integration/test_thinking_servers.py`` for exactly what each server puts on the wire).

Every test under tests/integration, and every test that uses one of these fixtures, gets the ``integration`` mark (deselect with ``-m "not integration"``).
Engines are provisioned once, after collection and before the first test (so pytest-timeout does not cut a
cold ~7-minute llama.cpp build short), and only for engines the selected tests use. If an engine cannot be
provisioned its tests are skipped, unless ``CI`` is set to a true value: then they fail (CI must not skip).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine_clients.testing import EngineServer
from engine_clients.testing import ProvisionError
from engine_clients.testing import ensure_llama_server
from engine_clients.testing import ensure_vllm
from engine_clients.testing import scripted_gguf
from engine_clients.testing import scripted_hf_model
from engine_clients.testing import start_llama_server
from engine_clients.testing import start_llama_vision_server
from engine_clients.testing import start_vllm_server
from engine_clients.testing import start_vllm_vision_server
from engine_clients.testing import vision_gguf
from engine_clients.testing import vision_hf_model
from engine_clients.testing.fake_sglang import FakeSGLang
from engine_clients.testing.fake_sglang import start_fake_sglang
from engine_clients.testing.ray_env import ensure_ray
from engine_clients.testing.router import ensure_vllm_router

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
LLAMA_API_KEY = "test-secret-key"

_PROVISIONERS: dict[str, Callable[[], object]] = {
    "llamacpp": lambda: (ensure_llama_server(), scripted_gguf()),
    "vllm": lambda: (ensure_vllm(), scripted_hf_model()),
}
_FIXTURE_ENGINE = {
    "llama_server": "llamacpp",
    "llama_server_keyed": "llamacpp",
    "vllm_server": "vllm",
    "llama_server_thinking": "llamacpp",
    "llama_server_thinking_raw": "llamacpp",
    "llamacpp_provisioned": "llamacpp",
    "vllm_provisioned": "vllm",
}
_provision_errors: dict[str, str] = {}
_provisioned: set[str] = set()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def _uses_engine(item: pytest.Item) -> bool:
    """Tests under tests/integration, and any test that asks for a real engine server."""
    if INTEGRATION_DIR in Path(item.path).resolve().parents:
        return True
    return any(name in _FIXTURE_ENGINE for name in getattr(item, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)  # before -m filtering, which needs the mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_engine(item):
            item.add_marker(pytest.mark.integration)


def _provision(engine: str) -> None:
    if engine in _provisioned or engine in _provision_errors:
        return
    try:
        _PROVISIONERS[engine]()
    except (ProvisionError, OSError) as exc:
        _provision_errors[engine] = f"{engine} could not be provisioned: {exc}"
    else:
        _provisioned.add(engine)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Provision the engines the selected tests need, outside any test's timeout, with visible progress."""
    needed = {
        _FIXTURE_ENGINE[name]
        for item in session.items
        if _uses_engine(item)
        for name in getattr(item, "fixturenames", ())
        if name in _FIXTURE_ENGINE
    }
    if not needed or session.config.option.collectonly:
        return
    capman = session.config.pluginmanager.getplugin("capturemanager")
    suspend = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with suspend:
        for engine in sorted(needed):
            _provision(engine)


def _require(engine: str) -> None:
    _provision(engine)  # no-op after pytest_collection_finish; covers direct use
    error = _provision_errors.get(engine)
    if error is None:
        return
    if _in_ci():
        pytest.fail(f"{error}\n(CI is set: integration tests must not be skipped)", pytrace=False)
    pytest.skip(error)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[EngineServer]:
    """llama-server with the scripted GGUF (no API key)."""
    _require("llamacpp")
    with start_llama_server() as server:
        yield server


@pytest.fixture(scope="session")
def llama_server_keyed() -> Iterator[EngineServer]:
    """llama-server with the scripted GGUF, started with ``--api-key test-secret-key``."""
    _require("llamacpp")
    with start_llama_server(api_key=LLAMA_API_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def llama_server_thinking() -> Iterator[EngineServer]:
    """llama-server, scripted GGUF with the thinking chat template, ``--reasoning-format deepseek``."""
    _require("llamacpp")
    with start_llama_server(thinking=True, reasoning_format="deepseek") as server:
        yield server


@pytest.fixture(scope="session")
def llama_server_thinking_raw() -> Iterator[EngineServer]:
    """llama-server, scripted GGUF with the thinking chat template, ``--reasoning-format none``."""
    _require("llamacpp")
    with start_llama_server(thinking=True, reasoning_format="none") as server:
        yield server


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[EngineServer]:
    """vLLM (CPU) with the scripted HF model (no API key), also a reasoning server: ``--reasoning-parser qwen3``
    and the thinking template, but plain prompts and answers unless a request asks for thinking."""
    _require("vllm")
    with start_vllm_server(thinking=True) as server:
        yield server


@pytest.fixture(scope="session")
def llamacpp_provisioned() -> None:
    """llama-server and the scripted GGUF are installed (skip, or fail in CI, if they cannot be); no server."""
    _require("llamacpp")


@pytest.fixture(scope="session")
def vllm_provisioned() -> None:
    """CPU vLLM and the scripted HF model are installed (skip, or fail in CI, if they cannot be); no server."""
    _require("vllm")


# ---- the router tier and the Ray job (tests/integration/test_router.py, test_ray_batch.py) ----------------
# Both tiers run llama-server replicas: their provisioning includes llama.cpp and the scripted GGUF.
_PROVISIONERS["router-tier"] = lambda: (ensure_llama_server(), scripted_gguf(), ensure_vllm_router())
_PROVISIONERS["ray-tier"] = lambda: (ensure_llama_server(), scripted_gguf(), ensure_ray())
_FIXTURE_ENGINE["router_provisioned"] = "router-tier"
_FIXTURE_ENGINE["ray_provisioned"] = "ray-tier"


@pytest.fixture(scope="session")
def router_provisioned() -> None:
    """llama-server, the scripted GGUF and vllm-router (its own cached venv) are installed (skip, or fail
    in CI, if they cannot be); no server."""
    _require("router-tier")


@pytest.fixture(scope="session")
def ray_provisioned() -> None:
    """llama-server, the scripted GGUF, and Ray Data with this project (the cached Ray venv) are installed
    (skip, or fail in CI, if they cannot be); no server, no cluster."""
    _require("ray-tier")


# ---- the tiny vision model (tests/integration/test_vision_servers.py) ---------------------------------------
# llama-server --mmproj: the scripted GGUF plus a LLaVA-style projector; vLLM: a tiny LlavaForConditionalGeneration.
_PROVISIONERS["llamacpp-vision"] = lambda: (ensure_llama_server(), vision_gguf())
_PROVISIONERS["vllm-vision"] = lambda: (ensure_vllm(), vision_hf_model())
_FIXTURE_ENGINE["llama_vision_server"] = "llamacpp-vision"
_FIXTURE_ENGINE["vllm_vision_server"] = "vllm-vision"


@pytest.fixture(scope="session")
def llama_vision_server() -> Iterator[EngineServer]:
    """llama-server with the scripted GGUF and a vision projector (``--mmproj FILE --jinja``), model
    "scripted-vision": each image adds 16 prompt tokens, the answer stays " Hello world."."""
    _require("llamacpp-vision")
    with start_llama_vision_server() as server:
        yield server


@pytest.fixture(scope="session")
def vllm_vision_server() -> Iterator[EngineServer]:
    """vLLM (CPU) with the tiny LlavaForConditionalGeneration, model "scripted-vision", at most 2 images per
    prompt: each image adds 16 prompt tokens, the answer stays " Hello world."."""
    _require("vllm-vision")
    with start_vllm_vision_server() as server:
        yield server


# ---- the scripted embedding and rerank models (tests/integration/test_embedding_servers.py) -----------------
# llama-server --embedding / --rerank with two scripted GGUFs; vLLM's pooling runner with a tiny LlamaModel.
def _provision_llama_embed() -> object:
    from engine_clients.testing import scripted_embed_gguf
    from engine_clients.testing import scripted_rerank_gguf

    return ensure_llama_server(), scripted_embed_gguf(), scripted_rerank_gguf()


def _provision_vllm_pooling() -> object:
    from engine_clients.testing import scripted_hf_embed_model

    return ensure_vllm(), scripted_hf_embed_model()


_PROVISIONERS["llamacpp-embed"] = _provision_llama_embed
_PROVISIONERS["vllm-pooling"] = _provision_vllm_pooling
_FIXTURE_ENGINE["llama_embed_server"] = "llamacpp-embed"
_FIXTURE_ENGINE["llama_rerank_server"] = "llamacpp-embed"
_FIXTURE_ENGINE["vllm_pooling_server"] = "vllm-pooling"


@pytest.fixture(scope="session")
def llama_embed_server() -> Iterator[EngineServer]:
    """llama-server ``--embedding --pooling mean`` with the scripted embedding GGUF, model "scripted-embed":
    a text's vector is its L2-normalised bag of words (``engine_clients.testing.EMBED_WORDS`` are one token
    each), so cosine similarity tracks word overlap."""
    from engine_clients.testing import start_llama_embed_server

    _require("llamacpp-embed")
    with start_llama_embed_server() as server:
        yield server


@pytest.fixture(scope="session")
def llama_rerank_server() -> Iterator[EngineServer]:
    """llama-server ``--rerank`` with the scripted rerank GGUF, model "scripted-rerank": the score grows with
    the number of keywords (``EMBED_KEYWORDS``) the document shares with the query (~0.1 none, ~0.33 one,
    ~0.68 two, ~0.9 three)."""
    from engine_clients.testing import start_llama_rerank_server

    _require("llamacpp-embed")
    with start_llama_rerank_server() as server:
        yield server


@pytest.fixture(scope="session")
def vllm_pooling_server() -> Iterator[EngineServer]:
    """vLLM (CPU, ``--runner pooling``) with the scripted HF embedding model, model "scripted-embed": the
    same bag-of-words vectors on ``/v1/embeddings``, cosine scores on ``/score``, ``/rerank``, ``/v1/rerank``."""
    from engine_clients.testing import start_vllm_pooling_server

    _require("vllm-pooling")
    with start_vllm_pooling_server() as server:
        yield server


# ---- the fake SGLang server (engine_clients/testing/fake_sglang.py) -----------------------------------------
# SGLang cannot run here (its wheel pins CUDA): a loopback server answering like sglang 0.5.23. Nothing to
# provision, so the tests on it are not marked integration.
@pytest.fixture(scope="session")
def sglang_fake() -> Iterator[FakeSGLang]:
    """The fake SGLang server (``start_fake_sglang()``, no API key): chat answers "Hello world.", calls the
    first (or the named) tool whenever tools are offered, fills a json_schema with placeholder values;
    ``/generate``, embeddings and rerank are scripted too (``_fake_sglang_answers.py``)."""
    with start_fake_sglang() as server:
        yield server
