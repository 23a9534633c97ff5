"""``engine-clients doctor`` on real servers: each ✓ and ✗ it prints, and the fix of each ✗.

The session's servers (tests/conftest.py) cover llama-server with ``--jinja``, with and without ``--mmproj``,
with ``--embedding`` and ``--rerank``, with ``--api-key`` (no key given), with and without a reasoning
format, and vLLM with its tool and reasoning parsers (plus its vision and pooling servers). Two cheap
llama-servers are started here, once: one with ``--no-jinja`` and one embedding server without
``--kv-unified``. vLLM *without* its parsers would be a fourth vLLM process: it is a respx stand-in in
``tests/unit/test_doctor.py`` instead, as is TGI (its recordings).

Servers other than the plain llama-server run only the checks they are there for (``only=``), to keep the
suite's time down; each full run sends about twenty small requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine_clients import LlamaCppClient
from engine_clients import UnsupportedInputError
from engine_clients._doctor import Report
from engine_clients._doctor import diagnose
from engine_clients.dialects.fixes import fix_for
from engine_clients.testing import EngineServer
from engine_clients.testing import start_llama_embed_server
from engine_clients.testing import start_llama_server

BUDGET = 120.0


def verdict(report: Report, label: str) -> tuple[str, str | None]:
    """(status, fix text) of the row labelled ``label``."""
    rows = [c for c in report.checks if c.label == label]
    assert len(rows) == 1, (label, [c.label for c in report.checks])
    return rows[0].status, rows[0].fix.text if rows[0].fix else None


def statuses(report: Report) -> dict[str, str]:
    return {c.label: c.status for c in report.checks}


@pytest.fixture(scope="module")
def llama_no_jinja(llamacpp_provisioned: None) -> Iterator[EngineServer]:
    """llama-server with ``--no-jinja`` (given after the launcher's ``--jinja``: the last one wins)."""
    with start_llama_server(parallel=1, extra_args=["--no-jinja"]) as server:
        yield server


@pytest.fixture(scope="module")
def llama_embed_per_slot_kv(llama_embed_server: EngineServer) -> Iterator[EngineServer]:
    """llama-server ``--embedding --pooling mean --parallel 2`` without ``--kv-unified``."""
    with start_llama_embed_server(unified_kv=False) as server:
        yield server


def test_llama_server_full_report(llama_server: EngineServer) -> None:
    report = diagnose(llama_server.base_url, budget=BUDGET, need_context=100_000)
    assert (report.engine, report.model) == ("llamacpp", "scripted-tiny")
    ok = [
        "server info",
        "API key",
        "chat",
        "server timings",
        "prompt cache hits",
        "streaming",
        "usage in streams",
        "tools: tool_choice='auto'",
        "tools: tool_choice='required'",
        "tools: tool_choice='get_weather'",
        "tools: tool_choice='none'",
        "structured output: json_schema",
        "structured output: grammar",
        "tokenize",
    ]
    assert {label: statuses(report)[label] for label in ok} == dict.fromkeys(ok, "ok")
    assert verdict(report, "structured output: regex") == ("skip", None)  # llama.cpp takes no regex
    assert verdict(report, "reasoning split") == ("skip", None)  # not a reasoning model
    assert verdict(report, "context size") == ("fail", fix_for("llamacpp", "context").text)
    assert verdict(report, "images") == ("fail", fix_for("llamacpp", "images").text)
    assert verdict(report, "embeddings") == ("fail", fix_for("llamacpp", "embeddings").text)
    assert verdict(report, "rerank") == ("fail", fix_for("llamacpp", "rerank").text)
    assert report.elapsed_s < BUDGET
    # the typed error a client gets says the same fix
    with LlamaCppClient(llama_server.base_url) as client, pytest.raises(UnsupportedInputError) as info:
        client.chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": TINY_PNG}}]}])
    assert fix_for("llamacpp", "images").text in str(info.value)


TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJ"
    "RU5ErkJggg=="
)


def test_llama_server_without_jinja_needs_jinja_for_tools(llama_no_jinja: EngineServer) -> None:
    report = diagnose(llama_no_jinja.base_url, budget=BUDGET, only={"chat", "tools"})
    assert verdict(report, "chat")[0] == "ok"
    for choice in ("'auto'", "'required'", "'get_weather'", "'none'"):
        assert verdict(report, f"tools: tool_choice={choice}") == ("fail", fix_for("llamacpp", "tools").text)


def test_keyed_llama_server_without_the_key(llama_server_keyed: EngineServer) -> None:
    report = diagnose(llama_server_keyed.base_url, budget=BUDGET)
    [auth] = report.checks  # nothing else can be checked
    assert (auth.capability, auth.status) == ("auth", "fail")
    assert "requires an API key and none was given" in auth.seen and "LLAMACPP_API_KEY" in auth.fix.text
    report = diagnose(llama_server_keyed.base_url, engine="llamacpp", budget=BUDGET)
    assert [(c.label, c.status) for c in report.checks] == [("API key", "fail")]
    assert verdict(report, "API key") == ("fail", fix_for("llamacpp", "auth").text)
    report = diagnose(
        llama_server_keyed.base_url, api_key=llama_server_keyed.api_key, budget=BUDGET, only={"chat"}
    )
    assert verdict(report, "API key") == ("ok", None)
    assert "required by the server" in report.check("auth").seen
    assert verdict(report, "chat")[0] == "ok"


def test_reasoning_split_by_the_server(llama_server_thinking: EngineServer) -> None:
    report = diagnose(llama_server_thinking.base_url, budget=BUDGET, only={"reasoning"})
    assert verdict(report, "reasoning split") == ("ok", None)
    assert "The user says hello." in report.check("reasoning").seen


def test_reasoning_left_in_the_content(llama_server_thinking_raw: EngineServer) -> None:
    report = diagnose(llama_server_thinking_raw.base_url, budget=BUDGET, only={"reasoning"})
    assert verdict(report, "reasoning split") == ("warn", fix_for("llamacpp", "reasoning").text)


def test_images_with_a_projector(llama_vision_server: EngineServer) -> None:
    report = diagnose(llama_vision_server.base_url, budget=BUDGET, only={"images"})
    assert verdict(report, "images") == ("ok", None)


def test_embeddings_server(llama_embed_server: EngineServer, llama_embed_per_slot_kv: EngineServer) -> None:
    report = diagnose(llama_embed_server.base_url, budget=BUDGET, only={"embeddings", "rerank"})
    assert verdict(report, "embeddings") == ("ok", None)
    assert verdict(report, "embeddings: mixed lengths in one batch") == ("ok", None)
    assert verdict(report, "rerank") == ("fail", fix_for("llamacpp", "rerank").text)
    report = diagnose(llama_embed_per_slot_kv.base_url, budget=BUDGET, only={"embeddings"})
    assert verdict(report, "embeddings")[0] == "ok"
    label = "embeddings: mixed lengths in one batch"
    assert verdict(report, label) == ("fail", fix_for("llamacpp", "embeddings_batch").text)


def test_rerank_server(llama_rerank_server: EngineServer) -> None:
    report = diagnose(llama_rerank_server.base_url, budget=BUDGET, only={"rerank"})
    assert verdict(report, "rerank") == ("ok", None)
    assert "best: document 0" in report.check("rerank").seen


def test_vllm_full_report(vllm_server: EngineServer) -> None:
    """The test kit's vLLM: hermes tool parser, qwen3 reasoning parser, per-request metrics and prompt-token
    details on; a text-only model; no pooling routes."""
    report = diagnose(vllm_server.base_url, budget=240, request_timeout=60)
    assert (report.engine, report.model) == ("vllm", "scripted-tiny")
    ok = [
        "server info",
        "API key",
        "context size",
        "chat",
        "server timings",
        "prompt cache hits",
        "streaming",
        "usage in streams",
        "tools: tool_choice='auto'",
        "tools: tool_choice='get_weather'",  # a named tool goes out strict (dialects/vllm.py)
        "tools: tool_choice='none'",
        "structured output: json_schema",
        "structured output: regex",
        "reasoning split",
        "tokenize",
    ]
    assert {label: statuses(report)[label] for label in ok} == dict.fromkeys(ok, "ok")
    # the scripted model answers {"a": "a"} to a non-strict tool under "required"; strict fits
    assert verdict(report, "tools: tool_choice='required'") == (
        "warn",
        fix_for("vllm", "tool_arguments").text,
    )
    assert (
        "with strict=True they do"
        in report.checks[[c.label for c in report.checks].index("tools: tool_choice='required'")].seen
    )
    assert verdict(report, "images") == ("fail", fix_for("vllm", "images").text)
    assert verdict(report, "embeddings") == ("fail", fix_for("vllm", "embeddings").text)
    assert verdict(report, "rerank") == ("fail", fix_for("vllm", "rerank").text)


def test_vllm_vision_and_pooling(vllm_vision_server: EngineServer, vllm_pooling_server: EngineServer) -> None:
    report = diagnose(vllm_vision_server.base_url, budget=240, request_timeout=60, only={"images"})
    assert verdict(report, "images") == ("ok", None)
    report = diagnose(
        vllm_pooling_server.base_url, budget=240, request_timeout=60, only={"chat", "embeddings", "rerank"}
    )
    assert verdict(report, "chat") == ("fail", fix_for("vllm", "chat").text)
    assert verdict(report, "embeddings") == ("ok", None)
    assert verdict(report, "embeddings: mixed lengths in one batch") == ("ok", None)
    assert verdict(report, "rerank") == ("ok", None)
