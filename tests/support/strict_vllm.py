"""A respx vLLM chat route for the wrappers' ``history``/``recover_tool_calls`` tests (LangChain and
LlamaIndex): a template that refuses non-alternating roles, and answers, streamed or not, whose text may hold
leaked tool-call markup."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import respx

from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

REFUSAL = {
    "object": "error",
    "message": "Conversation roles must alternate user/assistant/user/assistant/...",
    "type": "BadRequestError",
    "code": 400,
}
MERGED = {"kind": "merged_consecutive", "index": 2}
LEAK = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


def answer(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def streamed(content: str) -> httpx.Response:
    pieces = [content[i : i + 7] for i in range(0, len(content), 7)]
    events = [
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
        for p in pieces
    ]
    events.append({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return event_stream(sse(*events))


def serve(content: str, *, strict: bool = False) -> Callable[[httpx.Request], httpx.Response]:
    """A vLLM chat route answering ``content``; ``strict``: its template refuses non-alternating roles."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        roles = [m["role"] for m in body["messages"]]
        if strict and any(a == b for a, b in itertools.pairwise(roles)):
            return httpx.Response(400, json=REFUSAL)
        return streamed(content) if body.get("stream") else httpx.Response(200, json=answer(content))

    return handler


def sent_roles(router: respx.MockRouter) -> list[list[str]]:
    return [[m["role"] for m in json.loads(c.request.content)["messages"]] for c in router.calls]
