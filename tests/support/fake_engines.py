"""respx stand-ins for whole TGI, vLLM and llama.cpp servers: the discovery routes ``engine_clients``
probes to detect the engine (the other engines' routes answer 404, as on the real servers), ``GET`` info
routes, and the chat and native text routes (plain JSON, or SSE when the body asks to stream).

Framework-free (only httpx/respx): the LangChain and the LlamaIndex auto-mode tests both use it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import respx

from tests.support.mock_streams import sse

ENGINES = ("tgi", "vllm", "llamacpp")
PROBES = ("/info", "/props", "/version", "/v1/models")
TEXT_ROUTES = {"tgi": "/generate", "vllm": "/v1/completions", "llamacpp": "/completion"}

TGI_INFO = {
    "model_id": "m",
    "max_input_tokens": 3000,
    "max_total_tokens": 4096,
    "router": "text-generation-router",
    "version": "3.3.6",
    "max_concurrent_requests": 128,
    "max_best_of": 2,
}
VLLM_VERSION = {"version": "0.32.0"}
VLLM_MODELS = {
    "object": "list",
    "data": [{"id": "m", "object": "model", "owned_by": "vllm", "max_model_len": 2048}],
}
LLAMACPP_PROPS = {
    "default_generation_settings": {"n_ctx": 1024},
    "build_info": "b1-abc",
    "total_slots": 1,
    "model_path": "/models/m.gguf",
}
LLAMACPP_MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "llamacpp"}]}

DISCOVERY: dict[str, dict[str, Any]] = {
    "tgi": {"/info": TGI_INFO},
    "vllm": {"/version": VLLM_VERSION, "/v1/models": VLLM_MODELS},
    "llamacpp": {"/props": LLAMACPP_PROPS, "/v1/models": LLAMACPP_MODELS},
}


def chat_answer(content: str, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def chat_stream(content: str) -> httpx.Response:
    words = content.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    events: list[Any] = [
        {"id": "chatcmpl-2", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    ]
    events += [
        {"id": "chatcmpl-2", "model": "m", "choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces
    ]
    events.append(
        {"id": "chatcmpl-2", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    )
    events.append(
        {
            "id": "chatcmpl-2",
            "model": "m",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces), "total_tokens": 5 + len(pieces)},
        }
    )
    return httpx.Response(200, content=sse(*events), headers={"content-type": "text/event-stream"})


def text_answer(engine: str, content: str) -> dict[str, Any]:
    if engine == "tgi":
        return {
            "generated_text": content,
            "details": {"finish_reason": "eos_token", "generated_tokens": 2, "prefill": [], "tokens": []},
        }
    if engine == "vllm":
        return {
            "id": "cmpl-1",
            "model": "m",
            "choices": [{"index": 0, "text": content, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    return {
        "content": content,
        "stop_type": "eos",
        "tokens_evaluated": 3,
        "tokens_predicted": 2,
        "model": "m",
    }


class FakeEngine:
    """One fake server on ``router`` at ``base``: ``engine``'s routes, the chat answer ``content`` (or the
    ``tool_calls``). ``probes`` counts discovery GETs, ``posts`` the POST bodies in order."""

    def __init__(
        self,
        router: respx.MockRouter,
        engine: str,
        base: str,
        *,
        content: str = "hi there",
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        self.engine, self.base, self.content, self.tool_calls = engine, base, content, tool_calls
        self.probes: list[str] = []
        self.posts: list[tuple[str, dict[str, Any]]] = []
        for path in PROBES:
            router.get(base + path).mock(side_effect=self._discovery(path))
        router.post(base + "/v1/chat/completions").mock(side_effect=self._chat)
        text = TEXT_ROUTES[engine]
        router.post(base + text).mock(side_effect=self._text)
        if engine == "tgi":
            router.post(base + "/generate_stream").mock(side_effect=self._text)

    def _discovery(self, path: str) -> Any:
        body = DISCOVERY[self.engine].get(path)

        def answer(request: httpx.Request) -> httpx.Response:
            self.probes.append(path)
            if body is None:
                return httpx.Response(404, json={"error": "Not Found"})
            return httpx.Response(200, json=body)

        return answer

    def _chat(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.posts.append(("/v1/chat/completions", body))
        if body.get("stream"):
            return chat_stream(self.content)
        return httpx.Response(200, json=chat_answer(self.content, self.tool_calls))

    def _text(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.posts.append((request.url.path, body))
        return httpx.Response(200, json=text_answer(self.engine, self.content))

    @property
    def last_body(self) -> dict[str, Any]:
        return self.posts[-1][1]

    @property
    def post_paths(self) -> list[str]:
        return [p for p, _ in self.posts]
