"""Every Python example in README.md and docs/**/*.md runs, as written, against the test kit's servers.

A small collector reads each fenced ```python block. The one change made to a block is visible and listed
here: each base URL in it is replaced by the URL of the session server that stands for it (``SERVERS``), and
``"change-me"``, the key the docs use, by that server's key where it has one. Engines that cannot run here
are stand-ins: TGI answers with its own recorded responses (respx, ``tests/support/tgi_recordings.py``),
SGLang is the test kit's fake server (``engine_clients.testing.fake_sglang``). A block preceded by
``<!-- docs-test: runs-in: FILE as NAME -->`` is run by that test file, where its servers are (the vLLM with
runtime LoRA loading, the Ray, Spark and Dask jobs: ``tests/support/doc_examples.py``); a block with a URL the
table does not know fails, so a new example has to say what it runs against.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from tests.support import tgi_recordings as rec
from tests.support.doc_examples import EXAMPLES
from tests.support.doc_examples import ROOT
from tests.support.doc_examples import URL
from tests.support.doc_examples import Example
from tests.support.fake_engines import TGI_INFO

# The base URL each example uses -> what stands for it here (a session fixture, or a stand-in).
SERVERS: dict[str, str] = {
    "http://127.0.0.1:8080": "llama_server",
    "http://router:30000": "llama_server",  # a router in front of llama-servers answers like one
    "http://litellm:4000": "llama_server",
    "http://gw": "llama_server",
    "http://llama-1:8080": "llama_server_keyed",  # the docs' "change-me" -> its key
    "http://127.0.0.1:8081": "llama_embed_server",
    "http://127.0.0.1:8082": "llama_rerank_server",
    "http://127.0.0.1:8083": "docs_lora_server",  # llama-server with the kit's "lora" adapter at scale 0
    "http://127.0.0.1:8084": "docs_router_server",  # router mode over two scripted GGUFs, alpha and beta
    "http://localhost:8000": "vllm_server",
    "http://gpu-1:8000": "vllm_server",
    "http://gpu-2:8000": "vllm_server",  # written as localhost: a second replica URL for the same server
    "http://vllm:8000": "vllm_server",
    "http://localhost:3000": "tgi",  # TGI's recorded answers (respx)
    "http://tgi:3000": "tgi",
    "http://gpu-1:30000": "sglang",  # the fake SGLang server, started with the docs' key
}
DOC_KEY = "change-me"


def test_the_collector_finds_the_examples() -> None:
    assert len(EXAMPLES) >= 25
    assert {e.path.name for e in EXAMPLES} >= {
        "README.md",
        "scale-out.md",
        "llamacpp.md",
        "vllm.md",
        "tgi.md",
    }
    skipped = [e for e in EXAMPLES if e.skip]
    assert not skipped, [e.id for e in skipped]  # every block runs, here or in its runs-in test


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.runs_in], ids=lambda e: e.id)
def test_a_block_run_elsewhere_is_run_there(example: Example) -> None:
    """``runs-in: FILE as NAME``: FILE exists and asks for the block by its name."""
    assert example.runs_in is not None
    runner = ROOT / example.runs_in
    assert runner.is_file(), f"{example.id}: {example.runs_in} does not exist"
    assert f'example("{example.name}")' in runner.read_text(), f"{example.runs_in} never runs {example.name}"


@pytest.fixture(scope="module")
def docs_lora_server(llamacpp_provisioned: None) -> Iterator[Any]:
    from engine_clients.testing import start_llama_lora_server

    with start_llama_lora_server(("LoRA",)) as server:
        yield server


@pytest.fixture(scope="module")
def docs_router_server(llamacpp_provisioned: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from engine_clients.testing import scripted_models_dir
    from engine_clients.testing import start_llama_router

    with start_llama_router(scripted_models_dir(tmp_path_factory.mktemp("models"))) as server:
        yield server


def _tgi_chat(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body.get("stream"):
        chunks = rec.wire_chunks("test_completion_prompts/test_chat_hfhub_usage")
        return httpx.Response(200, content=rec.sse_body(chunks), headers=rec.SSE_HEADERS)
    if body.get("tools"):
        return httpx.Response(
            200, json=rec.wire_json("test_tools_llama/test_flash_llama_grammar_tools_choice_nostream")
        )
    return httpx.Response(200, json=rec.wire_json("test_chat_llama/test_flash_llama_simple"))


@contextlib.contextmanager
def tgi_stand_in(urls: list[str]) -> Iterator[None]:
    """TGI's recorded answers at ``urls``; every other request goes through to the real servers."""
    with respx.mock(assert_all_called=False) as router:
        for url in urls:
            router.get(f"{url}/info").respond(200, json=TGI_INFO)
            router.post(f"{url}/v1/chat/completions").mock(side_effect=_tgi_chat)
        router.route().pass_through()
        yield


@pytest.mark.integration
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_runs(
    example: Example, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    if example.skip:
        pytest.skip(example.skip)
    if example.runs_in:
        pytest.skip(f"run by {example.runs_in} (as {example.name}), where its servers are")
    for var in ("TGI", "VLLM", "LLAMACPP", "TEI", "SGLANG"):
        monkeypatch.delenv(f"{var}_BASE_URL", raising=False)
        monkeypatch.delenv(f"{var}_API_KEY", raising=False)
    urls = sorted(set(URL.findall(example.code)))
    unknown = [u for u in urls if u not in SERVERS]
    assert not unknown, (
        f"{example.id}: no server stands for {unknown}: add it to SERVERS or mark the block skipped"
    )
    code = example.code
    tgi_urls = []
    with contextlib.ExitStack() as stack:
        for url in urls:
            name = SERVERS[url]
            if name == "tgi":
                tgi_urls.append(url)
                continue
            if name == "sglang":
                from engine_clients.testing.fake_sglang import start_fake_sglang

                server: Any = stack.enter_context(start_fake_sglang(api_key=DOC_KEY))
            else:
                server = request.getfixturevalue(name)
            base = server.base_url
            if url == "http://gpu-2:8000":
                base = base.replace("127.0.0.1", "localhost")
            code = code.replace(url, base)  # the substitution
            if getattr(server, "api_key", None) and name != "sglang":
                code = code.replace(DOC_KEY, server.api_key)
        if tgi_urls:
            stack.enter_context(tgi_stand_in(tgi_urls))
        exec(compile(code, example.id, "exec"), {"__name__": "__docs__"})
