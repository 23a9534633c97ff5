"""Structured output after thinking (issue 19 item 3), against mocked vLLM and llama.cpp servers.

- ``response_format`` asked for JSON and the engine left the content empty with the JSON at the end of the
  reasoning: the JSON becomes the content (``content_from_reasoning``), in ``chat`` and ``chat_stream``;
- JSON that does not fit, or none: ``StructuredOutputError`` with both texts; never when there is content;
- the answer after server-parsed reasoning starts without vLLM's leading newline, streamed or not.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from typing import Literal

import pydantic
import pytest
import respx

from engine_clients import End
from engine_clients import JsonObject
from engine_clients import LlamaCppClient
from engine_clients import Reasoning
from engine_clients import StructuredOutputError
from engine_clients import Token
from engine_clients import VLLMClient
from engine_clients._clients import BaseClient
from engine_clients.dialects.json_answer import json_answer
from engine_clients.dialects.json_answer import matches_schema
from engine_clients.dialects.json_answer import trailing_json
from engine_clients.dialects.reasoning import lstrip_newlines
from tests.support.mock_streams import event_stream
from tests.support.mock_streams import sse

URL = "http://engine.test"
CHAT = f"{URL}/v1/chat/completions"
MODES = ["sync", "async"]
# the field each engine puts the server-parsed thinking in
ENGINES = [("vllm", "reasoning"), ("llamacpp", "reasoning_content")]


class Address(pydantic.BaseModel):
    city: str
    zip: str | None = None


class Person(pydantic.BaseModel):
    name: str
    age: int
    role: Literal["admin", "user"]
    addresses: list[Address]


PERSON = Person.model_json_schema()
GOOD = {"name": "Ada", "age": 36, "role": "admin", "addresses": [{"city": "London"}]}
GOOD_TEXT = json.dumps(GOOD, indent=2)


def client(engine: str) -> BaseClient:
    cls = {"vllm": VLLMClient, "llamacpp": LlamaCppClient}[engine]
    result: BaseClient = cls(URL, max_retries=0)
    return result


def answer(content: str | None, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def chunk(finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chat(c: BaseClient, mode: str, *args: Any, **kwargs: Any) -> Any:
    return c.chat(*args, **kwargs) if mode == "sync" else asyncio.run(c.achat(*args, **kwargs))


def stream(c: BaseClient, mode: str, *args: Any, **kwargs: Any) -> list[Any]:
    if mode == "sync":
        return list(c.chat_stream(*args, **kwargs))

    async def run() -> list[Any]:
        return [e async for e in c.achat_stream(*args, **kwargs)]

    return asyncio.run(run())


def thinking(field: str, *pieces: str, finish: str = "stop", content: str | None = None) -> bytes:
    events: list[Any] = [chunk(role="assistant", content="")]
    events += [chunk(**{field: p}) for p in pieces]
    if content is not None:
        events.append(chunk(content=content))
    events.append(chunk(finish))
    return sse(*events)


# ---- the pure codec ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('I will answer {"a": 1}', {"a": 1}),
        ('Draft {"a": 0}. Final:\n{"a": {"b": [1, 2]}}  \n', {"a": {"b": [1, 2]}}),
        ('Here:\n```json\n{"a": "x}"}\n```\n', {"a": "x}"}),
        ("list [1, [2, 3]]", [1, [2, 3]]),
        ('braces in strings {"s": "{[\\"q\\"]}"}', {"s": '{["q"]}'}),
    ],
)
def test_trailing_json_finds_the_last_top_level_value(text: str, expected: Any) -> None:
    found = trailing_json(text)
    assert found is not None and found[0] == expected
    assert json.loads(found[1]) == expected  # the value's own text, as written


@pytest.mark.parametrize("text", ["no json here", '{"a": 1} and then prose', '{"a": 1', "", "   ```"])
def test_trailing_json_none_when_the_text_does_not_end_with_json(text: str) -> None:
    assert trailing_json(text) is None


def test_schema_check_covers_what_pydantic_schemas_use() -> None:
    assert matches_schema(GOOD, PERSON)
    assert matches_schema(
        {**GOOD, "addresses": [{"city": "Paris", "zip": None}]}, PERSON
    )  # Optional: anyOf null
    assert not matches_schema({**GOOD, "age": "36"}, PERSON)  # type
    assert not matches_schema({**GOOD, "age": True}, PERSON)  # a boolean is no integer
    assert matches_schema({**GOOD, "age": 36.0}, PERSON)  # an integral number is an integer
    assert not matches_schema({k: v for k, v in GOOD.items() if k != "role"}, PERSON)  # required
    assert not matches_schema({**GOOD, "role": "root"}, PERSON)  # enum (Literal)
    assert not matches_schema({**GOOD, "addresses": [{"zip": "1"}]}, PERSON)  # $ref into $defs, required
    assert not matches_schema({**GOOD, "addresses": {"city": "x"}}, PERSON)  # array
    closed = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    assert matches_schema({"a": "x"}, closed) and not matches_schema({"a": "x", "b": 1}, closed)
    assert matches_schema({"anything": [1]}, {}) and not matches_schema(1, False)


def test_json_answer_rules() -> None:
    fmt = JsonObject()
    kw: dict[str, Any] = {"has_tool_calls": False, "finish": "stop", "engine": "vllm"}
    assert json_answer("", 'x {"a": 1}', fmt, **kw) == '{"a": 1}'
    assert json_answer(" \n", 'x {"a": 1}', fmt, **kw) == '{"a": 1}'  # whitespace is empty
    assert json_answer("text", "no json", fmt, **kw) is None  # content present: never raises
    assert json_answer("", "no json", None, **kw) is None  # no JSON asked for
    assert json_answer("", None, fmt, **kw) is None  # no reasoning: not a thinking answer
    assert json_answer("", "no json", fmt, **{**kw, "has_tool_calls": True}) is None
    with pytest.raises(StructuredOutputError, match="not an object"):
        json_answer("", "x [1]", fmt, **kw)  # json_object means an object


def test_lstrip_newlines_drops_line_breaks_only() -> None:
    assert lstrip_newlines("\n Hello world.") == " Hello world."
    assert lstrip_newlines("\r\n\n\r\nHi\n") == "Hi\n"
    assert lstrip_newlines(" \nHi") == " \nHi"
    assert lstrip_newlines("\n\n") == ""


# ---- chat ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("engine", "field"), ENGINES)
@pytest.mark.parametrize("content", [None, "", "\n\n"])
def test_json_in_the_reasoning_becomes_the_content(
    engine: str, field: str, mode: str, content: str | None
) -> None:
    thought = f"The user wants a person. Let me write it.\n```json\n{GOOD_TEXT}\n```\n"
    with respx.mock() as router:
        route = router.post(CHAT).respond(json=answer(content, **{field: thought}))
        result = chat(client(engine), mode, "Ada?", response_format=Person)
    assert json.loads(result.content) == GOOD and result.content == GOOD_TEXT
    assert result.content_from_reasoning is True
    assert result.reasoning == thought  # the reasoning is kept as received
    assert json.loads(route.calls.last.request.content)["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("engine", "field"), ENGINES)
def test_json_that_does_not_fit_raises_with_both_texts(engine: str, field: str, mode: str) -> None:
    thought = 'Draft: {"name": "Ada"}'
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("", **{field: thought}))
        with pytest.raises(StructuredOutputError, match="does not fit the schema") as info:
            chat(client(engine), mode, "Ada?", response_format=Person)
    err = info.value
    assert (err.content, err.reasoning, err.engine) == ("", thought, engine)
    assert err.status_code is None


@pytest.mark.parametrize("mode", MODES)
def test_thinking_cut_by_max_tokens_raises_and_says_so(mode: str) -> None:
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer(None, finish="length", reasoning="Hmm, let me think about"))
        with pytest.raises(StructuredOutputError, match=r"does not end with JSON.*max_tokens"):
            chat(client("vllm"), mode, "Ada?", response_format={"type": "json_object"}, max_tokens=8)


@pytest.mark.parametrize(("engine", "field"), ENGINES)
def test_content_present_is_never_replaced_nor_refused(engine: str, field: str) -> None:
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("not json at all", **{field: f"x {GOOD_TEXT}"}))
        result = client(engine).chat("Ada?", response_format=Person)
    assert result.content == "not json at all" and result.content_from_reasoning is False


def test_without_response_format_an_empty_answer_stays_empty() -> None:
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("", reasoning=f"x {GOOD_TEXT}"))
        result = client("vllm").chat("Ada?")
    assert result.content == "" and result.content_from_reasoning is False


def test_json_object_takes_any_object() -> None:
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("", reasoning='so: {"free": ["form"]}'))
        result = client("vllm").chat("Ada?", response_format=JsonObject())
    assert result.content == '{"free": ["form"]}' and result.content_from_reasoning


def test_a_tool_call_with_empty_content_is_no_error() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("", reasoning="call f", tool_calls=[call]))
        result = client("vllm").chat("Ada?", response_format=JsonObject(), tools=[{"name": "f"}])
    assert result.tool_calls[0].name == "f" and result.content == ""


# ---- chat_stream ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("engine", "field"), ENGINES)
def test_stream_sends_the_json_as_a_last_token_before_end(engine: str, field: str, mode: str) -> None:
    pieces = ["Let me write it.\n", GOOD_TEXT[:20], GOOD_TEXT[20:]]
    with respx.mock() as router:
        router.post(CHAT).mock(return_value=event_stream(thinking(field, *pieces, content="\n")))
        events = stream(client(engine), mode, "Ada?", response_format=Person)
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert tokens == [GOOD_TEXT]  # the newline after the reasoning was dropped; then the JSON
    assert "".join(e.text for e in events if isinstance(e, Reasoning)) == "".join(pieces)
    end = events[-1]
    assert isinstance(end, End) and isinstance(events[-2], Token)
    assert end.content == GOOD_TEXT and end.completion.content_from_reasoning is True


@pytest.mark.parametrize("mode", MODES)
def test_stream_raises_when_the_reasoning_json_does_not_fit(mode: str) -> None:
    with respx.mock() as router:
        router.post(CHAT).mock(return_value=event_stream(thinking("reasoning", 'Draft {"name": 1}')))
        with pytest.raises(StructuredOutputError) as info:
            stream(client("vllm"), mode, "Ada?", response_format=Person)
    assert info.value.reasoning == 'Draft {"name": 1}' and info.value.content == ""


def test_stream_with_content_is_untouched() -> None:
    with respx.mock() as router:
        body = thinking("reasoning", f"x {GOOD_TEXT}", content='{"name": "B"}')
        router.post(CHAT).mock(return_value=event_stream(body))
        events = list(client("vllm").chat_stream("Ada?", response_format=Person))
    assert events[-1].content == '{"name": "B"}' and not events[-1].completion.content_from_reasoning


# ---- the answer after the reasoning starts the same everywhere -------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("engine", "field", "content"),
    [
        ("vllm", "reasoning", "\n Hello world."),  # vLLM's parser leaves the newline after </think>
        ("llamacpp", "reasoning_content", " Hello world."),
        ("vllm", "reasoning", "\r\n\r\n Hello world."),
    ],
)
def test_answer_after_server_reasoning_has_no_leading_newline(
    engine: str, field: str, content: str, mode: str
) -> None:
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer(content, **{field: "Greet."}))
        result = chat(client(engine), mode, "Hi")
    assert result.content == " Hello world." and result.reasoning == "Greet."


def test_no_reasoning_no_trimming() -> None:
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("\nHello"))
        assert client("vllm").chat("Hi").content == "\nHello"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "pieces",
    [["\n", " Hello", " world.\n"], ["\n Hello", " world.\n"], ["\r\n", "\n", " Hello world.\n"]],
)
def test_stream_drops_the_leading_newlines_after_server_reasoning(pieces: list[str], mode: str) -> None:
    events: list[Any] = [chunk(role="assistant", content=""), chunk(reasoning="Greet.")]
    events += [chunk(content=p) for p in pieces] + [chunk("stop")]
    with respx.mock() as router:
        router.post(CHAT).mock(return_value=event_stream(sse(*events)))
        out = stream(client("vllm"), mode, "Hi")
    tokens = [e.text for e in out if isinstance(e, Token)]
    assert "".join(tokens) == " Hello world.\n" and tokens[0].startswith(" Hello")
    assert out[-1].content == " Hello world.\n"  # later newlines stay


def test_stream_content_before_any_reasoning_is_not_trimmed() -> None:
    events = [chunk(content="\nA"), chunk(reasoning="then think"), chunk(content="\nB"), chunk("stop")]
    with respx.mock() as router:
        router.post(CHAT).mock(return_value=event_stream(sse(*events)))
        out = list(client("vllm").chat_stream("Hi"))
    assert out[-1].content == "\nA\nB"


# ---- what the wrappers see --------------------------------------------------------------------------------


def test_langchain_sees_the_json_and_the_flag_streamed_or_not() -> None:
    lc = pytest.importorskip("langchain_selfhosted")
    model = lc.ChatVLLM(base_url=URL, model="m", max_retries=0)
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("", reasoning=f"Ok.\n{GOOD_TEXT}"))
        message = model.invoke("Ada?", response_format=Person)
    assert message.content == GOOD_TEXT and message.response_metadata["content_from_reasoning"] is True
    with respx.mock() as router:
        router.post(CHAT).mock(return_value=event_stream(thinking("reasoning", "Ok.\n", GOOD_TEXT)))
        chunks = list(model.stream("Ada?", response_format=Person))
    assert "".join(str(c.content) for c in chunks) == GOOD_TEXT
    assert any(c.response_metadata.get("content_from_reasoning") for c in chunks)
    with respx.mock() as router:
        router.post(CHAT).respond(json=answer("", reasoning=f"x {GOOD_TEXT}"))
        assert model.with_structured_output(Person).invoke("Ada?") == Person(**GOOD)
