"""``engine-clients doctor`` without servers: the fixes table (one source for the typed errors' hints and the
doctor's fix column), detection that meets only 401/403, and the doctor's verdicts on engines that cannot
run here: vLLM without its tool and reasoning parsers (a respx stand-in answering what vLLM 0.32 answers
then) and TGI (its own recorded responses). The real-server verdicts are in
``tests/integration/test_cli_doctor.py``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from engine_clients import AuthenticationError
from engine_clients import EngineDetectionAuthError
from engine_clients import EngineDetectionError
from engine_clients import connect
from engine_clients._doctor import Report
from engine_clients._doctor import diagnose
from engine_clients.dialects.fixes import FIXES
from engine_clients.dialects.fixes import fix_for
from engine_clients.dialects.fixes import fix_for_error
from engine_clients.dialects.llamacpp import LlamaCppDialect
from engine_clients.dialects.vllm import VLLMDialect
from engine_clients.errors import InternalServerError
from engine_clients.errors import UnsupportedInputError
from tests.support import tgi_recordings as rec
from tests.support.fake_engines import TGI_INFO
from tests.support.fake_engines import VLLM_MODELS
from tests.support.fake_engines import VLLM_VERSION
from tests.support.mock_streams import sse
from tests.support.openapi import validate_request

ROOT = Path(__file__).resolve().parents[2]
URL = "http://engine.test:8000"


def verdict(report: Report, label: str) -> tuple[str, str | None]:
    """(status, fix text) of the row labelled ``label``."""
    [row] = [c for c in report.checks if c.label == label]
    return row.status, row.fix.text if row.fix else None


# ---- the fixes table --------------------------------------------------------------------------------------


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    out = set()
    for line in doc.read_text().splitlines():
        if line.startswith("## "):
            text = line[3:].strip().lower()
            out.add("#" + re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return out


@pytest.mark.parametrize(
    ("engine", "capability"), [(e, c) for e, table in FIXES.items() for c in table], ids=lambda v: str(v)
)
def test_every_fix_links_to_a_section_that_exists(engine: str, capability: str) -> None:
    fix = FIXES[engine][capability]
    assert fix.text and not fix.text.endswith(".")
    if fix.doc is not None:
        path, _, anchor = fix.doc.partition("#")
        assert (ROOT / path).is_file(), fix.doc
        assert f"#{anchor}" in _anchors(ROOT / path), fix.doc


@pytest.mark.parametrize(
    ("dialect", "status", "message", "capability"),
    [
        (LlamaCppDialect(), 500, "tools param requires --jinja flag", "tools"),
        (
            LlamaCppDialect(),
            501,
            "This server does not support embeddings. Start it with `--embeddings`",
            "embeddings",
        ),
        (
            LlamaCppDialect(),
            501,
            "This server does not support reranking. Start it with `--reranking`",
            "rerank",
        ),
        (
            VLLMDialect(),
            400,
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set',
            "tools_auto",
        ),
    ],
)
def test_server_errors_carry_the_doctors_fix(
    dialect: Any, status: int, message: str, capability: str
) -> None:
    body = json.dumps({"error": {"code": status, "message": message, "type": "server_error"}}).encode()
    err = dialect.parse_error(status, body)
    fix = fix_for(dialect.engine, capability)
    assert fix is not None and fix_for_error(dialect.engine, message) == fix
    assert str(err).endswith(f"Fix: {fix}")
    assert message in str(err)


@pytest.mark.parametrize(
    ("dialect", "message"),
    [
        (LlamaCppDialect(), "image input is not supported - hint: you may need to provide the mmproj"),
        (VLLMDialect(), "scripted-tiny is not a multimodal model"),
    ],
)
def test_unsupported_input_names_the_doctors_images_fix(dialect: Any, message: str) -> None:
    err = dialect.parse_error(400, json.dumps({"error": {"message": message}}).encode())
    assert isinstance(err, UnsupportedInputError)
    assert str(fix_for(dialect.engine, "images")) in str(err)


def test_errors_without_a_known_cause_get_no_fix() -> None:
    err = LlamaCppDialect().parse_error(500, b'{"error": {"code": 500, "message": "boom"}}')
    assert isinstance(err, InternalServerError) and "Fix:" not in str(err)


# ---- detection that meets only 401/403 ----------------------------------------------------------------------


def test_detection_behind_a_key_says_the_key_is_missing() -> None:
    with respx.mock() as router:
        router.get(url__startswith=URL).respond(401, json={"error": "Unauthorized"})
        with pytest.raises(EngineDetectionAuthError) as info:
            connect(URL)
    assert isinstance(info.value, AuthenticationError) and isinstance(info.value, EngineDetectionError)
    assert "requires an API key and none was given" in str(info.value)
    assert "LLAMACPP_API_KEY" in str(info.value) and "engine" not in str(info.value).split("Fix:")[1]
    assert info.value.observed == dict.fromkeys(("/info", "/props", "/version", "/v1/models"), 401)


def test_detection_with_a_refused_key_says_it_is_wrong_or_not_allowed() -> None:
    with respx.mock() as router:
        router.get(url__startswith=URL).respond(401)
        with pytest.raises(EngineDetectionAuthError, match="refused the API key given: it is wrong"):
            connect(URL, api_key="nope")
    with respx.mock() as router:
        router.get(f"{URL}/info").respond(404)
        router.get(url__startswith=URL).respond(403)
        with pytest.raises(EngineDetectionAuthError, match="not allowed") as info:
            connect(URL, api_key="nope")
    assert info.value.status_code == 403


def test_detection_that_meets_other_answers_is_unchanged() -> None:
    with respx.mock() as router:
        router.get(url__startswith=URL).respond(418)
        with pytest.raises(EngineDetectionError) as info:
            connect(URL)
    assert not isinstance(info.value, AuthenticationError)


# ---- doctor against vLLM without its tool and reasoning parsers ---------------------------------------------

THINK = "<think>\nThe user says hello.\n</think>\n Hello world."
LEAKED_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def _answer(content: str | None, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "reasoning": None}
    if calls:
        message["tool_calls"] = [
            {"id": f"chatcmpl-tool-{i}", "type": "function", "function": c} for i, c in enumerate(calls)
        ]
    finish = "tool_calls" if calls else "stop"
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "scripted-tiny",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": 40,
            "completion_tokens": 4,
            "total_tokens": 44,
            "prompt_tokens_details": None,
        },
    }


def _vllm_chat(request: httpx.Request) -> httpx.Response:
    """What vLLM 0.32 started without --enable-auto-tool-choice, --reasoning-parser,
    --enable-per-request-metrics and --enable-prompt-tokens-details answers."""
    body = json.loads(request.content)
    if body.get("stream"):
        chunk = {"id": "c", "object": "chat.completion.chunk", "model": "scripted-tiny"}
        events = [
            {**chunk, "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": None}]}
            for t in (" Hello", " world", ".")
        ]
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        events.append(
            {
                **chunk,
                "choices": [],
                "usage": {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44},
            }
        )
        return httpx.Response(200, content=sse(*events), headers={"content-type": "text/event-stream"})
    if any(
        isinstance(part, dict) and part.get("type") == "image_url"
        for m in body["messages"]
        for part in m["content"]
        if isinstance(m["content"], list)
    ):
        return httpx.Response(
            400,
            json={
                "object": "error",
                "message": "scripted-tiny is not a multimodal model",
                "type": "BadRequestError",
                "code": 400,
            },
        )
    choice = body.get("tool_choice")
    if body.get("tools") and choice == "auto":
        return httpx.Response(200, json=_answer(LEAKED_CALL))  # no parser: the call stays in the text
    if body.get("tools") and choice != "none":
        strict = any(t["function"].get("strict") for t in body["tools"])
        args = '{"city": "Paris"}' if strict else '{"a": "a"}'  # non-strict tools: arguments unconstrained
        return httpx.Response(200, json=_answer(None, [{"name": "get_weather", "arguments": args}]))
    if (body.get("chat_template_kwargs") or {}).get("enable_thinking"):
        return httpx.Response(200, json=_answer(THINK))  # no reasoning parser: thinking in the content
    if "response_format" in body:
        return httpx.Response(200, json=_answer('{"city": "Paris", "population": 2100000}'))
    if "structured_outputs" in body:
        return httpx.Response(200, json=_answer("yes"))
    return httpx.Response(200, json=_answer(" Hello world."))


def _mock_vllm(router: respx.MockRouter) -> None:
    router.get(f"{URL}/version").respond(200, json=VLLM_VERSION)
    router.get(f"{URL}/v1/models").respond(
        200, json={**VLLM_MODELS, "data": [{**VLLM_MODELS["data"][0], "id": "scripted-tiny"}]}
    )
    router.post(f"{URL}/v1/chat/completions").mock(side_effect=_vllm_chat)
    router.post(f"{URL}/tokenize").respond(
        200, json={"count": 2, "max_model_len": 2048, "tokens": [9906, 1917]}
    )
    router.route().respond(404, json={"detail": "Not Found"})


def test_doctor_on_vllm_without_parsers_names_each_missing_flag() -> None:
    with respx.mock() as router:
        _mock_vllm(router)
        report = diagnose(URL, budget=30)
    assert (report.engine, report.version, report.model) == ("vllm", "0.32.0", "scripted-tiny")
    assert verdict(report, "chat")[0] == "ok"
    assert verdict(report, "streaming")[0] == verdict(report, "usage in streams")[0] == "ok"
    assert verdict(report, "tools: tool_choice='auto'") == ("warn", fix_for("vllm", "tools_auto").text)
    assert verdict(report, "tools: tool_choice='required'") == (
        "warn",
        fix_for("vllm", "tool_arguments").text,
    )
    [row] = [c for c in report.checks if c.label == "tools: tool_choice='required'"]
    assert "with strict=True they do" in row.seen
    if getattr(VLLMDialect, "constrains_named_tools", False):  # the client sends a named tool strict itself
        assert verdict(report, "tools: tool_choice='get_weather'") == ("ok", None)
    else:
        assert verdict(report, "tools: tool_choice='get_weather'")[0] == "warn"
    assert verdict(report, "tools: tool_choice='none'")[0] == "ok"
    assert verdict(report, "reasoning split") == ("warn", fix_for("vllm", "reasoning").text)
    assert verdict(report, "server timings") == ("fail", fix_for("vllm", "timings").text)
    assert verdict(report, "prompt cache hits") == ("fail", fix_for("vllm", "cache").text)
    assert verdict(report, "images") == ("fail", fix_for("vllm", "images").text)
    assert verdict(report, "embeddings") == ("fail", fix_for("vllm", "embeddings").text)
    assert verdict(report, "rerank") == ("fail", fix_for("vllm", "rerank").text)
    assert verdict(report, "structured output: json_schema")[0] == "ok"
    assert verdict(report, "tokenize")[0] == "ok"
    assert verdict(report, "context size") == ("ok", None)


def test_doctor_json_is_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    from engine_clients._cli import main

    with respx.mock() as router:
        _mock_vllm(router)
        code = main(["doctor", URL, "--json", "--need-context", "4096", "--require", "chat,context"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # the context is 2,048 tokens, fewer than needed
    assert out["engine"] == "vllm" and out["url"] == URL
    [context] = [c for c in out["checks"] if c["capability"] == "context"]
    assert context["status"] == "fail" and context["fix"] == {
        "text": fix_for("vllm", "context").text,
        "doc": "docs/engines/vllm.md#1-launch-command",
    }
    assert {c["status"] for c in out["checks"]} <= {"ok", "warn", "fail", "skip"}


def test_doctor_cli_exit_status(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from engine_clients._cli import main

    for var in ("TGI_BASE_URL", "VLLM_BASE_URL", "LLAMACPP_BASE_URL", "TEI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert main(["doctor"]) == 2
    monkeypatch.setenv("COLUMNS", "200")  # the table's width (rich reads it)
    with respx.mock() as router:
        _mock_vllm(router)
        monkeypatch.setenv("VLLM_BASE_URL", URL)
        assert main(["doctor", "--require", "chat,tools"]) == 0  # the URL from VLLM_BASE_URL
        assert main(["doctor", "--require", "images"]) == 1
    table = capsys.readouterr().out
    assert "✓" in table and "✗" in table and "docs/engines/vllm.md#1-launch-command" in table
    with respx.mock() as router:
        router.get(url__startswith=URL).respond(401)
        assert main(["doctor", URL, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    [auth] = out["checks"]
    assert auth["capability"] == "auth" and auth["status"] == "fail" and "none was given" in auth["seen"]


# ---- doctor against TGI, replaying its own recorded answers --------------------------------------------------


TGI_SENT: list[str] = []


def _tgi_chat(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    try:  # every request the doctor sends TGI fits TGI's OpenAPI spec
        validate_request("/v1/chat/completions", body, strict=False, tgi_compat=False)
    except AssertionError as exc:
        TGI_SENT.append(str(exc))
        return httpx.Response(422, json={"error": str(exc)[:200], "error_type": "validation"})
    if "response_format" in body:  # as TGI started with --disable-grammar-support answers
        return httpx.Response(422, json={"error": "Grammar is not supported", "error_type": "validation"})
    if any(isinstance(m["content"], list) for m in body["messages"]):  # a text-only model
        error = "Input validation error: image modality is not supported by model"
        return httpx.Response(422, json={"error": error, "error_type": "validation"})
    if body.get("stream"):
        chunks = rec.wire_chunks("test_completion_prompts/test_chat_hfhub_usage")
        return httpx.Response(200, content=rec.sse_body(chunks), headers=rec.SSE_HEADERS)
    if body.get("tools") and body.get("tool_choice") not in (None, "none", "auto"):
        return httpx.Response(
            200, json=rec.wire_json("test_tools_llama/test_flash_llama_grammar_tools_choice_nostream")
        )
    if body.get("tools") and body.get("tool_choice") == "auto":
        return httpx.Response(
            200, json=rec.wire_json("test_tools_llama/test_flash_llama_grammar_tools_auto_nostream")
        )
    return httpx.Response(200, json=rec.wire_json("test_chat_llama/test_flash_llama_simple"))


@pytest.mark.parametrize("engine", ["vllm", "tgi", "tei", "llamacpp"])
def test_doctor_with_engine_given_and_no_key_says_which_variable(engine: str) -> None:
    with respx.mock() as router:
        router.route().respond(401, json={"error": "Unauthorized"})
        report = diagnose(URL, engine=engine, budget=10)
    [auth] = report.checks
    assert auth.label == "API key" and auth.status == "fail"
    assert auth.fix == fix_for(engine, "auth") and f"{engine.upper()}_API_KEY" in auth.fix.text


def _tgi_router(router: respx.MockRouter) -> None:
    router.get(f"{URL}/info").respond(200, json=TGI_INFO)
    router.post(f"{URL}/v1/chat/completions").mock(side_effect=_tgi_chat)
    router.post(f"{URL}/tokenize").respond(200, json=[{"id": 15043, "text": "Hello", "start": 0, "stop": 5}])
    router.route().respond(404, json={"error": "Not Found"})


def test_doctor_on_tgi_recordings() -> None:
    with respx.mock(assert_all_called=False) as router:
        _tgi_router(router)
        report = diagnose(URL, budget=30)
    assert TGI_SENT == []
    assert report.engine == "tgi" and report.version == "3.3.6"
    for label in ("chat", "streaming", "usage in streams", "tools: tool_choice='none'"):
        assert verdict(report, label)[0] == "ok", label
    for label in ("tools: tool_choice='required'", "tools: tool_choice='get_weather'"):
        [row] = [c for c in report.checks if c.label == label]  # the recording answers another tool
        assert "get_current_weather" in row.seen and row.fix is None
    assert verdict(report, "structured output: grammar")[0] == "skip"  # TGI takes JSON and regex grammars
    assert verdict(report, "structured output: json_schema") == (
        "fail",
        fix_for("tgi", "structured_output").text,
    )
    assert verdict(report, "images") == ("fail", fix_for("tgi", "images").text)
    assert verdict(report, "embeddings") == ("fail", fix_for("tgi", "embeddings").text)
    assert verdict(report, "rerank") == ("fail", fix_for("tgi", "rerank").text)
    assert verdict(report, "context size") == ("ok", None)
    assert verdict(report, "tokenize")[0] == "ok"
    assert not [c for c in report.checks if "the check itself failed" in c.seen]


def test_doctor_on_tgi_names_the_context_fix() -> None:
    with respx.mock(assert_all_called=False) as router:
        _tgi_router(router)
        report = diagnose(URL, budget=30, need_context=32_000, only={"info"})
    assert verdict(report, "context size") == ("fail", fix_for("tgi", "context").text)
    assert [c.label for c in report.checks] == ["server info", "API key", "context size"]


def test_doctor_on_tei_says_it_serves_no_chat() -> None:
    tei_info = {
        "model_id": "BAAI/bge-small-en-v1.5",
        "model_type": {"embedding": {"pooling": "cls"}},
        "max_client_batch_size": 32,
        "version": "1.9.3",
    }
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/info").respond(200, json=tei_info)
        router.route().respond(404)
        report = diagnose(URL, budget=30, only={"chat", "tools"})
    assert report.engine == "tei"
    assert verdict(report, "chat") == ("fail", fix_for("tei", "chat").text)
    assert {c.status for c in report.checks if c.label.startswith("tools")} == {"skip"}


def test_every_fix_is_asserted_by_a_test() -> None:
    """Each fix the doctor can print is asserted somewhere: here (stand-ins) or on real servers."""
    here = Path(__file__).read_text()
    real = (ROOT / "tests" / "integration" / "test_cli_doctor.py").read_text()
    asserted = set(re.findall(r'fix_for\("(\w+)", "(\w+)"\)', here + real))
    asserted |= {(e, "auth") for e in ("vllm", "tgi", "tei", "llamacpp")}  # the parametrized test above
    missing = sorted({(e, c) for e, table in FIXES.items() for c in table} - asserted)
    assert missing == []


# ---- doctor against the fake SGLang server (engine_clients.testing.fake_sglang) ------------------------------


def test_doctor_on_fake_sglang() -> None:
    from engine_clients.testing.fake_sglang import start_fake_sglang

    with start_fake_sglang(thinking=True) as server:
        report = diagnose(server.base_url, budget=30, need_context=100_000)
    assert (report.engine, report.version) == ("sglang", "0.5.23")
    for label in (
        "chat",
        "streaming",
        "usage in streams",
        "tools: tool_choice='auto'",
        "embeddings",
        "rerank",
    ):
        assert verdict(report, label)[0] == "ok", label
    assert verdict(report, "reasoning split") == ("warn", fix_for("sglang", "reasoning").text)
    assert verdict(report, "prompt cache hits") == ("fail", fix_for("sglang", "cache").text)
    assert verdict(report, "context size") == ("fail", fix_for("sglang", "context").text)
    with start_fake_sglang(thinking=True, reasoning_parser="qwen3") as server:
        report = diagnose(server.base_url, budget=30, only={"reasoning"})
    assert verdict(report, "reasoning split") == ("ok", None)
    with start_fake_sglang(api_key="sk-fake") as server:
        report = diagnose(server.base_url, engine="sglang", budget=30)
        assert [c.label for c in report.checks] == ["API key"]
        assert verdict(report, "API key") == ("fail", fix_for("sglang", "auth").text)
        report = diagnose(server.base_url, api_key="sk-fake", budget=30, only={"chat"})
        assert verdict(report, "API key") == ("ok", None) and verdict(report, "chat")[0] == "ok"


def test_doctor_without_rich_prints_a_plain_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """rich is the [cli] extra: without it the same rows come out as plain columns, and nothing fails."""
    from engine_clients._cli import main

    monkeypatch.setitem(sys.modules, "rich", None)  # import rich raises ImportError
    with respx.mock() as router:
        _mock_vllm(router)
        assert main(["doctor", URL, "--require", "images"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{URL}: vllm") and lines[1].split()[0] == "capability"
    [images] = [line for line in lines if line.startswith("images")]
    assert "✗" in images and fix_for("vllm", "images").text in images
