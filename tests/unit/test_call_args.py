"""The chat and generate methods take their keyword parameters from one place (``_call_args``): each keeps
the full signature a user sees in ``help()`` and an IDE, coroutine methods stay coroutine functions, and a
wrong call fails as a call to the method would."""

from __future__ import annotations

import inspect

import pytest

from engine_clients import BaseClient
from engine_clients import VLLMClient
from engine_clients._call_args import chat_call
from engine_clients._call_args import generate_call

CHAT = ["chat", "achat", "chat_stream", "achat_stream", "build_chat"]
GENERATE = ["generate", "agenerate", "generate_stream", "agenerate_stream", "build_generate"]


def _params(fn: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]


@pytest.mark.parametrize("name", CHAT + GENERATE)
def test_every_method_shows_the_one_keyword_list(name: str) -> None:
    source = chat_call if name in CHAT else generate_call
    client = VLLMClient("http://127.0.0.1:9", model="m")
    assert _params(getattr(client, name)) == _params(source)
    assert getattr(BaseClient, name).__doc__  # the method's own docstring, not the source's


@pytest.mark.parametrize("name", ["achat", "agenerate"])
def test_async_methods_stay_coroutine_functions(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(BaseClient, name))
    assert not inspect.iscoroutinefunction(getattr(BaseClient, name.removeprefix("a")))


def test_a_wrong_call_is_a_type_error_before_anything_is_sent() -> None:
    client = VLLMClient("http://127.0.0.1:9", model="m", max_retries=0)
    with pytest.raises(TypeError):
        client.chat("hi", [])  # type: ignore[misc]
    with pytest.raises(TypeError):
        client.build_generate()  # type: ignore[call-arg]


def test_build_methods_take_stream_and_leave_the_call_alone() -> None:
    client = VLLMClient("http://127.0.0.1:9", model="m")
    assert client.build_chat("hi", stream=True).stream is True
    assert client.build_chat("hi", max_tokens=3).stream is False
    assert client.build_generate("hi", stream=True).stream is True
    assert client.build_chat("hi", session_id="s1").json == client.build_chat("hi").json
