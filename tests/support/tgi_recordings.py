"""Real TGI responses (TGI's integration-test snapshots) as wire bodies for mocks and assertions.

Files: ``tests/data/tgi/snapshots/<module>/<test>.json`` (unmodified copies, Apache-2.0); provenance, request
details and quirks are in ``tests/data/tgi/README.md``. A recording's name is its path under ``snapshots/``
without ``.json``, e.g. ``"test_tools_llama/test_flash_llama_grammar_tools_nostream"``.

Most files were dumped from a client library's model objects, which adds null keys TGI never sent
(``CLIENT_ADDED_KEYS``, per capture mode in ``RECORDINGS``); ``wire_json``/``wire_chunks`` remove them.
Keys stay alphabetically sorted as stored (TGI writes struct order; JSON parsers do not care).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import Literal
from typing import TypedDict

SNAPSHOTS_DIR = Path(__file__).resolve().parents[1] / "data" / "tgi" / "snapshots"

#: Response headers of a real TGI SSE stream (README "Things that hold for every file", item 3); status 200.
SSE_HEADERS: dict[str, str] = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}

Capture = Literal["raw", "text_generation", "huggingface_hub", "openai"]

#: Null keys each client library adds, by place: ``body`` (top level), ``details`` (``/generate``),
#: ``choice``, ``message`` (a choice's ``message`` or ``delta``), ``usage``. Only removed when null.
CLIENT_ADDED_KEYS: dict[Capture, dict[str, tuple[str, ...]]] = {
    "raw": {},
    "text_generation": {
        "details": ("best_of_sequences", "top_tokens"),
        "choice": ("usage",),
        "message": ("name", "tool_calls"),
    },
    "huggingface_hub": {"message": ("content", "tool_calls")},
    "openai": {
        "body": ("service_tier",),
        "message": ("content", "tool_calls", "function_call", "refusal"),
        "usage": ("completion_tokens_details", "prompt_tokens_details"),
    },
}


class _RecordingBase(TypedDict):
    route: str  # route requested; "/" is TGI's compat route (a mock of /generate returns the bare object)
    stream: bool
    capture: Capture  # who stored it: "raw" = parsed wire JSON, else the client library that dumped it
    request: dict[str, Any]  # request parameters the test passed (client libraries may add more keys)
    finish_reason: str | None  # as on the wire; streams: last chunk that has a choice
    model: str | None  # served model id in the body (None for /generate bodies)
    system_fingerprint: str | None


class Recording(_RecordingBase, total=False):
    content: str  # message content, joined deltas, completion text, or generated_text
    choices: list[tuple[int, str]]  # /v1/completions with several prompts: (index, text) in wire order
    tool_call: dict[str, str]  # id, name, arguments (streams: joined fragments)
    usage: dict[str, int] | None  # streams: the include_usage chunk's usage, None when none was sent
    chunks: int  # number of recorded stream chunks (no [DONE])
    generated_tokens: int
    seed: int | None
    responses: int  # files holding several /generate responses (concurrent requests)
    note: str


def _usage(prompt: int, completion: int, total: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def _generate_body(inputs: str, **params: Any) -> dict[str, Any]:
    """The body TGI's ``text_generation`` client posts to ``/`` (README item 4: every field, nulls too)."""
    parameters: dict[str, Any] = {
        "best_of": None,
        "decoder_input_details": True,
        "details": True,
        "do_sample": False,
        "frequency_penalty": None,
        "grammar": None,
        "max_new_tokens": None,
        "repetition_penalty": None,
        "return_full_text": False,
        "seed": None,
        "stop": [],
        "temperature": None,
        "top_k": None,
        "top_n_tokens": None,
        "top_p": None,
        "truncate": None,
        "typical_p": None,
        "watermark": False,
    }
    parameters.update(params)
    return {"inputs": inputs, "parameters": parameters, "stream": False}


BROOKLYN_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Youre a helpful assistant! Answer the users question best you can."},
    {"role": "user", "content": "What is the weather like in Brooklyn, New York?"},
]
SEA_CREATURE_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "You're a helpful assistant! Answer the users question best you can. If the question is "
        "not answerable by the tools, just generate a response.",
    },
    {"role": "user", "content": "Tell me a story about 3 sea creatures"},
]
WHO_ARE_YOU_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You're a helpful assistant! Answer the users question best you can."},
    {"role": "user", "content": "Who are you?"},
]
_LOCATION = {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}
_FORMAT = {
    "type": "string",
    "enum": ["celsius", "fahrenheit"],
    "description": "The temperature unit to use. Infer this from the users location.",
}
#: ``tools`` of ``integration-tests/models/test_tools_llama.py`` (OpenAI shape, ``parameters`` key).
WEATHER_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather",
            "parameters": {
                "type": "object",
                "properties": {"location": _LOCATION, "format": _FORMAT},
                "required": ["location", "format"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_n_day_weather_forecast",
            "description": "Get an N-day weather forecast",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": _LOCATION,
                    "format": _FORMAT,
                    "num_days": {"type": "integer", "description": "The number of days to forecast"},
                },
                "required": ["location", "format", "num_days"],
                "additionalProperties": False,
            },
        },
    },
]
WEATHER_SCHEMA: dict[str, Any] = {
    "properties": {
        "unit": {"title": "Unit", "type": "string"},
        "temperature": {"items": {"type": "integer"}, "title": "Temperature", "type": "array"},
    },
    "required": ["unit", "temperature"],
    "title": "Weather",
    "type": "object",
}
#: Person schema, reconstructed from the README (the per-property descriptions are not recorded there).
PERSON_SCHEMA: dict[str, Any] = {
    "$id": "https://example.com/person.schema.json",
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Person",
    "type": "object",
    "properties": {
        "firstName": {"type": "string"},
        "lastName": {"type": "string"},
        "hobby": {"type": "string"},
        "numCats": {"type": "integer", "minimum": 0},
    },
    "required": ["firstName", "lastName", "hobby", "numCats"],
}
_PERSON_MIN4: dict[str, Any] = {
    **PERSON_SCHEMA,
    "properties": {
        **{k: {"type": "string", "minLength": 4} for k in ("firstName", "lastName", "hobby")},
        "numCats": {"type": "integer", "minimum": 0},
    },
}
_WEATHER_MESSAGES: list[dict[str, Any]] = [
    {
        "role": "system",
        "content": "Respond to the users questions and answer them in the following format: "
        + repr(WEATHER_SCHEMA),
    },
    {"role": "user", "content": "What's the weather like the next 3 days in San Francisco, CA?"},
]
_WEATHER_ANSWER = '{ "unit": "fahrenheit", "temperature": [ 72, 79, 88 ] }'
_BROOKLYN_CALL = {
    "id": "0",
    "name": "get_current_weather",
    "arguments": '{"location":"Brooklyn, NY","format":"fahrenheit"}',
}
_LLAMA31 = "meta-llama/Llama-3.1-8B-Instruct"
_TINY = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
_FP312 = "3.1.2-dev0-native"
_SEA20 = "Once upon a time, in a vibrant ocean filled with coral reefs and schools of shimmering fish,"
_WHO = "I'm an artificial intelligence model known as a large language model (LLM) or conversational AI"
_BEGINNER = " A Beginner\u2019s Guide\nDeep learning is a subset"
_STORY = (
    _SEA20 + " lived three dear friends: Luna the sea turtle, Finley the friendly fish, and Crusty the wise"
    " crab.\n\nLuna was the oldest of the three. She had traveled the world, exploring hidden caves and"
    " shipwrecks, and collecting sparkling"
    " shells and shiny pebbles. Her shell was a beautiful mosaic of blues and greens, and her gentle eyes"
    " twinkled with the secrets of the deep"
)
_PERSON_JSON = '{"firstName":"David","hobby":"Trees","lastName":"Holtz","numCats":2}'
_PROJECTS = " for /api/v1/projects/1"
_CHAT = "/v1/chat/completions"


def _gen(request: dict[str, Any], content: str, finish: str, tokens: int, **extra: Any) -> Recording:
    rec: Recording = {
        "route": "/",
        "stream": False,
        "capture": "text_generation",
        "request": request,
        "finish_reason": finish,
        "model": None,
        "system_fingerprint": None,
        "content": content,
        "generated_tokens": tokens,
        "seed": None,
    }
    rec.update(extra)  # type: ignore[typeddict-item]
    return rec


def _chat(
    request: dict[str, Any], capture: Capture, finish: str | None, model: str, fingerprint: str, **extra: Any
) -> Recording:
    rec: Recording = {
        "route": _CHAT,
        "stream": bool(request.get("stream")),
        "capture": capture,
        "request": request,
        "finish_reason": finish,
        "model": model,
        "system_fingerprint": fingerprint,
    }
    rec.update(extra)  # type: ignore[typeddict-item]
    return rec


_TOOLS_REQ: dict[str, Any] = {
    "messages": BROOKLYN_MESSAGES,
    "tools": WEATHER_TOOLS,
    "max_tokens": 100,
    "seed": 1,
    "temperature": 0.0,
}
_OK_REQ: dict[str, Any] = {
    "model": "tgi",
    "messages": [{"role": "user", "content": "Say 'OK!'"}],
    "stream": True,
    "max_tokens": 10,
    "seed": 42,
}
_CONTINUE_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "system message"},
    {"role": "user", "content": "Which is bigger an elephant or a mouse?"},
]
_TOOL_REPLY_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "What's the weather like in Paris today?"},
    {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "0",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"longitude": 2.2945, "latitude": 48.8567}',
                    "description": None,
                },
            }
        ],
    },
    {"role": "tool", "tool_call_id": "0", "content": "6.7"},
]

#: What each recording was requested with and what it holds (README per-file entries). Read-only: the
#: request dicts share the message/tool constants above.
RECORDINGS: dict[str, Recording] = {
    # ---- POST / (generate), text_generation client ----
    "test_flash_llama/test_flash_llama_simple": _gen(
        _generate_body("Test request", max_new_tokens=10), _PROJECTS, "length", 10
    ),
    "test_flash_llama/test_flash_llama_all_params": _gen(
        _generate_body(
            "Test request",
            max_new_tokens=10,
            repetition_penalty=1.2,
            return_full_text=True,
            stop=["test"],
            temperature=0.5,
            top_p=0.9,
            top_k=10,
            truncate=5,
            typical_p=0.9,
            watermark=True,
            seed=0,
        ),
        "Test request failed: Error in test",
        "stop_sequence",
        5,
        seed=0,
        note="return_full_text: generated_text starts with the prompt; last token ' test' has logprob 0.0",
    ),
    "test_flash_llama/test_flash_llama_load": _gen(
        _generate_body("Test request", max_new_tokens=10),
        _PROJECTS,
        "length",
        10,
        responses=4,
        note="a JSON list of 4 responses to 4 concurrent requests; logprobs differ slightly",
    ),
    "test_flash_grammar_llama/test_flash_llama_grammar": _gen(
        _generate_body("Test request", max_new_tokens=10), "\n\nI hope this helps! Let me know", "length", 10
    ),
    "test_flash_grammar_llama/test_flash_llama_grammar_regex": _gen(
        _generate_body(
            "Whats Googles DNS",
            max_new_tokens=10,
            seed=0,
            grammar={
                "type": "regex",
                "value": r"((25[0-5]|2[0-4]\d|[01]?\d\d?)\.){3}(25[0-5]|2[0-4]\d|[01]?\d\d?)",
            },
        ),
        "42.1.1.101",
        "length",
        10,
        note="seed sent but greedy decoding, so details.seed is null",
    ),
    "test_flash_grammar_llama/test_flash_llama_grammar_json": _gen(
        _generate_body(
            "info: david holtz like trees and has two cats. ",
            max_new_tokens=100,
            seed=0,
            grammar={"type": "json", "value": json.dumps(PERSON_SCHEMA)},
        ),
        _PERSON_JSON,
        "eos_token",
        30,
        note="last token is '</s>' with special: true, not part of generated_text",
    ),
    "test_flash_grammar_llama/test_flash_llama_grammar_single_load_instance": _gen(
        _generate_body(
            "name: david. email:  ",
            max_new_tokens=10,
            stop=[".com"],
            seed=0,
            decoder_input_details=False,
            grammar={"type": "regex", "value": r"[\w-]+@([\w-]+\.)+[\w-]+"},
        ),
        "123456@gmail.com",
        "length",
        10,
        note="finish_reason length although the text ends with the stop string '.com'",
    ),
    "test_grammar_llama/test_non_flash_llama_grammar_json": _gen(
        _generate_body(
            "info: david holtz like trees and has two cats. ",
            max_new_tokens=100,
            seed=0,
            grammar={"type": "json", "value": json.dumps(PERSON_SCHEMA)},
        ),
        _PERSON_JSON,
        "eos_token",
        30,
        note="byte-identical to test_flash_grammar_llama/test_flash_llama_grammar_json",
    ),
    # ---- /v1/chat/completions and /v1/completions ----
    "test_chat_llama/test_flash_llama_simple": _chat(
        {"model": "tgi", "messages": BROOKLYN_MESSAGES, "max_tokens": 100, "seed": 1, "stream": False},
        "text_generation",
        "length",
        _TINY,
        "2.2.1-dev0-native",
        content="As of your last question, the weather in Brooklyn, New York, is typically hot and humid "
        "throughout the year. The suburbs around New York City are jealously sheltered, and at least in the "
        "Lower Bronx, there are very few outdoor environments to appreciate nature.\n\nIn terms of "
        "temperature, the warmest times of the year are from June to August, when average high temperatures "
        "typically range from around 73°F or 23°C",
        usage=_usage(61, 100, 161),
    ),
    "test_completion_prompts/test_flash_llama_completion_single_prompt": {
        "route": "/v1/completions",
        "stream": False,
        "capture": "raw",
        "request": {"model": "tgi", "prompt": "What is Deep Learning?", "max_tokens": 10, "temperature": 0.0},
        "finish_reason": "length",
        "model": _LLAMA31,
        "system_fingerprint": _FP312,
        "content": _BEGINNER,
        "usage": _usage(6, 10, 16),
    },
    "test_completion_prompts/test_flash_llama_completion_many_prompts": {
        "route": "/v1/completions",
        "stream": False,
        "capture": "raw",
        "request": {
            "model": "tgi",
            "prompt": [
                "What is Deep Learning?",
                "Is water wet?",
                "What is the capital of France?",
                "def mai",
            ],
            "max_tokens": 10,
            "seed": 0,
            "temperature": 0.0,
        },
        "finish_reason": "length",
        "model": _LLAMA31,
        "system_fingerprint": _FP312,
        "choices": [
            (1, " This is a question that has puzzled many people for"),
            (0, _BEGINNER),
            (3, 'usculas_minusculas(s):\n    """\n'),
            (2, " Paris\nWhat is the capital of France?\nThe"),
        ],
        "usage": _usage(22, 40, 62),
        "note": "choices in completion order, not index order; usage summed over the prompts",
    },
    "test_completion_prompts/test_flash_llama_completion_stream_usage": _chat(
        {
            "model": "tgi",
            "messages": [{"role": "user", "content": "What is Deep Learning?"}],
            "max_tokens": 10,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        "huggingface_hub",
        "length",
        _LLAMA31,
        _FP312,
        content="**Deep Learning: An Overview**\n=====================================\n\n",
        usage=_usage(40, 10, 50),
        chunks=11,
        note="chunk 10 carries finish_reason; chunk 11 has choices [] and the usage",
    ),
    "test_completion_prompts/test_chat_openai_nousage": _chat(
        {**_OK_REQ, "stream_options": {"include_usage": False}},
        "openai",
        "stop",
        _LLAMA31,
        _FP312,
        content="OK!",
        usage=None,
        chunks=3,
        note="last chunk has content '' (the EOS token is special) and finish_reason stop",
    ),
    "test_completion_prompts/test_chat_hfhub_usage": _chat(
        {**_OK_REQ, "stream_options": {"include_usage": True}},
        "huggingface_hub",
        "stop",
        _LLAMA31,
        _FP312,
        content="OK!",
        usage=_usage(39, 3, 42),
        chunks=4,
    ),
    "test_completion_prompts/test_chat_hfhub_nousage": _chat(
        {**_OK_REQ, "stream_options": {"include_usage": False}},
        "huggingface_hub",
        "stop",
        _LLAMA31,
        _FP312,
        content="OK!",
        usage=None,
        chunks=3,
    ),
    "test_continue_final_message/test_llama_completion_single_prompt": _chat(
        {"model": "tgi", "messages": _CONTINUE_MESSAGES, "max_tokens": 30, "stream": False, "seed": 1337},
        "raw",
        "length",
        _TINY,
        "2.4.1-dev0-native",
        content="Both an elephant and a mouse are mammals. However, the differences between elephants and "
        "mice are:\n\n1",
        usage=_usage(49, 30, 79),
    ),
    "test_continue_final_message/test_llama_completion_single_prompt_continue": _chat(
        {
            "model": "tgi",
            "messages": [
                *_CONTINUE_MESSAGES,
                {"role": "assistant", "content": "the elephant, but have you heard about"},
            ],
            "max_tokens": 30,
            "stream": False,
            "seed": 1337,
        },
        "raw",
        "length",
        _TINY,
        "2.4.1-dev0-native",
        content=" the royal mouse? It is a little more slender and only weighs around 1.5 pounds for males "
        "and 1.3 pounds",
        usage=_usage(73, 30, 103),
        note="a final assistant message is continued; only the continuation is returned",
    ),
    "test_grammar_response_format_llama/test_grammar_response_format_llama_json": _chat(
        {
            "model": "tgi",
            "messages": _WEATHER_MESSAGES,
            "seed": 42,
            "max_tokens": 500,
            "response_format": {"type": "json_object", "value": WEATHER_SCHEMA},
        },
        "raw",
        "stop",
        _TINY,
        "2.4.1-dev0-native",
        content=_WEATHER_ANSWER,
        usage=_usage(136, 29, 165),
    ),
    "test_grammar_response_format_llama/test_grammar_response_format_llama_json.1": _chat(
        {
            "model": "tgi",
            "messages": _WEATHER_MESSAGES,
            "seed": 42,
            "max_tokens": 500,
            "response_format": {"type": "json", "value": WEATHER_SCHEMA},
        },
        "raw",
        "stop",
        _TINY,
        "3.1.1-dev0-native",
        content=_WEATHER_ANSWER,
        usage=_usage(135, 29, 164),
    ),
    "test_grammar_response_format_llama/test_grammar_response_format_llama_json.2": _chat(
        {
            "model": "tgi",
            "messages": _WEATHER_MESSAGES,
            "seed": 42,
            "max_tokens": 500,
            "response_format": {
                "type": "json_schema",
                "value": {"name": "weather", "strict": True, "schema": WEATHER_SCHEMA},
            },
        },
        "raw",
        "stop",
        _TINY,
        "3.1.1-dev0-native",
        content=_WEATHER_ANSWER,
        usage=_usage(135, 29, 164),
        note="TGI's json_schema shape: the wrapper sits under 'value', not OpenAI's 'json_schema' key",
    ),
    "test_json_schema_constrain/test_json_schema_basic": _chat(
        {
            "model": "tgi",
            "messages": [
                {
                    "role": "user",
                    "content": "David is a person who likes trees and nature. He enjoys studying math and "
                    "science. He has 2 cats.",
                }
            ],
            "seed": 42,
            "temperature": 0.0,
            "response_format": {
                "type": "json_schema",
                "value": {"name": "person", "strict": True, "schema": _PERSON_MIN4},
            },
        },
        "raw",
        "stop",
        "google/gemma-3-4b-it",
        "3.3.6-dev0-native",
        content='{"firstName":"David","lastName":"(Not provided)","hobby":", nature","numCats":2}',
        usage=_usage(32, 35, 67),
        note="recorded on 3.2.3-dev0; the fingerprint was hand-edited by release commits",
    ),
    "test_json_schema_constrain/test_json_schema_stream": _chat(
        {
            "model": "tgi",
            "messages": [
                {"role": "user", "content": "David is a person who likes to ride bicycles. He has 2 cats."}
            ],
            "seed": 42,
            "temperature": 0.0,
            "stream": True,
            "response_format": {
                "type": "json_schema",
                "value": {"name": "person", "strict": True, "schema": _PERSON_MIN4},
            },
        },
        "raw",
        "stop",
        "google/gemma-3-4b-it",
        "3.2.1-dev0-native",
        content='{"firstName":"David","lastName":"Unknown",'
        '"hobby":", \\"riding bicycles\\", \\"having cats\\"","numCats":2}',
        usage=None,
        chunks=39,
    ),
    # ---- tools (Llama-3.1-8B-Instruct) ----
    "test_tools_llama/test_flash_llama_grammar_tools_nostream": _chat(
        dict(_TOOLS_REQ),
        "huggingface_hub",
        "stop",
        _LLAMA31,
        _FP312,
        tool_call=_BROOKLYN_CALL,
        usage=_usage(501, 29, 530),
        note="message has no content key; finish_reason stop (not tool_calls); arguments is a JSON string",
    ),
    "test_tools_llama/test_flash_llama_grammar_tools_auto_nostream": _chat(
        {**_TOOLS_REQ, "tool_choice": "auto"},
        "huggingface_hub",
        "stop",
        _LLAMA31,
        _FP312,
        tool_call=_BROOKLYN_CALL,
        usage=_usage(501, 29, 530),
    ),
    "test_tools_llama/test_flash_llama_grammar_tools_choice_nostream": _chat(
        {**_TOOLS_REQ, "tool_choice": "get_current_weather"},
        "huggingface_hub",
        "stop",
        _LLAMA31,
        _FP312,
        tool_call=_BROOKLYN_CALL,
        usage=_usage(286, 29, 315),
        note="bare function-name tool_choice; only the named tool goes into the prompt",
    ),
    "test_tools_llama/test_flash_llama_grammar_tools_openai": _chat(
        {**_TOOLS_REQ, "model": "tgi", "stream": True},
        "openai",
        None,
        _LLAMA31,
        _FP312,
        tool_call={
            "id": "0",
            "name": "get_current_weather",
            "arguments": '{ "location": "Brooklyn, NY", "format": "fahrenheit"}',
        },
        usage=None,
        chunks=17,
        note="no chunk has a finish_reason; name only in chunk 1, then name null; id/type/index repeat",
    ),
    "test_tools_llama/test_flash_llama_grammar_tools_insufficient_information_nostream": _chat(
        {
            "messages": WHO_ARE_YOU_MESSAGES,
            "tools": WEATHER_TOOLS,
            "tool_choice": "auto",
            "max_tokens": 20,
            "seed": 24,
            "stream": False,
        },
        "huggingface_hub",
        "stop",
        _LLAMA31,
        _FP312,
        content=_WHO,
        usage=_usage(53, 12, 65),
        note="no_tool path: finish_reason and completion_tokens describe the tool-selection pass",
    ),
    "test_tools_llama/test_flash_llama_grammar_tools_insufficient_information_stream": _chat(
        {
            "messages": WHO_ARE_YOU_MESSAGES,
            "tools": WEATHER_TOOLS,
            "tool_choice": "auto",
            "max_tokens": 20,
            "seed": 24,
            "stream": True,
        },
        "huggingface_hub",
        "length",
        _LLAMA31,
        _FP312,
        content=_WHO,
        usage=None,
        chunks=20,
    ),
    "test_tools_llama/test_flash_llama_grammar_tools_sea_creatures_stream_auto": _chat(
        {
            "messages": SEA_CREATURE_MESSAGES,
            "tools": WEATHER_TOOLS,
            "tool_choice": "auto",
            "max_tokens": 20,
            "seed": 24,
            "stream": True,
        },
        "huggingface_hub",
        "length",
        _LLAMA31,
        _FP312,
        content=_SEA20,
        usage=None,
        chunks=20,
    ),
    "test_tools_llama/test_flash_llama_grammar_tools_sea_creatures_stream_none": _chat(
        {
            "messages": SEA_CREATURE_MESSAGES,
            "tools": WEATHER_TOOLS,
            "tool_choice": "none",
            "max_tokens": 100,
            "seed": 24,
            "stream": True,
        },
        "huggingface_hub",
        "length",
        _LLAMA31,
        _FP312,
        content=_STORY,
        usage=None,
        chunks=100,
    ),
    "test_tools_llama/test_flash_llama_tool_reply_response": _chat(
        {"messages": _TOOL_REPLY_MESSAGES, "max_tokens": 100, "seed": 42, "stream": False},
        "huggingface_hub",
        "stop",
        _LLAMA31,
        _FP312,
        content="I can't access real-time data, but I can provide you with current conditions and forecast "
        "for Paris, France:\n\nThe current conditions in Paris are mostly cloudy with a temperature of 6.7°C "
        "(44.1°F). \n\nPlease note that the actual weather may differ from the provided information. For "
        "up-to-date information, I suggest checking a reliable weather website or app for the latest "
        "conditions and forecast.",
        usage=_usage(109, 83, 192),
    ),
}


def names() -> list[str]:
    """Names of all recordings present under ``SNAPSHOTS_DIR``."""
    return sorted(str(p.relative_to(SNAPSHOTS_DIR).with_suffix("")) for p in SNAPSHOTS_DIR.glob("*/*.json"))


def load(name: str) -> Any:
    """The snapshot JSON exactly as stored (client-added keys included)."""
    return json.loads((SNAPSHOTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _drop(obj: Any, keys: tuple[str, ...]) -> None:
    if isinstance(obj, dict):
        for key in keys:
            if key in obj and obj[key] is None:
                del obj[key]


def strip_client_keys(body: Mapping[str, Any], capture: Capture) -> dict[str, Any]:
    """A copy of one recorded body without the null keys ``capture``'s client library added."""
    keys = CLIENT_ADDED_KEYS[capture]
    out = copy.deepcopy(dict(body))
    _drop(out, keys.get("body", ()))
    _drop(out.get("details"), keys.get("details", ()))
    _drop(out.get("usage"), keys.get("usage", ()))
    for choice in out.get("choices") or []:
        _drop(choice, keys.get("choice", ()))
        _drop(choice.get("message", choice.get("delta")), keys.get("message", ()))
    return out


def wire_json(name: str) -> Any:
    """The recording as TGI put it on the wire: an object (a ``POST /generate`` body for generate files), or a
    list of objects (stream chunks; the 4 responses of ``test_flash_llama_load``)."""
    raw, capture = load(name), RECORDINGS[name]["capture"]
    if isinstance(raw, list):
        return [strip_client_keys(item, capture) for item in raw]
    return strip_client_keys(raw, capture)


def wire_chunks(name: str) -> list[dict[str, Any]]:
    """The chunks of a recorded stream, as sent (no ``[DONE]``)."""
    if not RECORDINGS[name]["stream"]:
        raise ValueError(f"{name} is not a stream recording")
    chunks: list[dict[str, Any]] = wire_json(name)
    return chunks


def wire_root_list(name: str) -> list[dict[str, Any]]:
    """The body TGI's compat route ``POST /`` (``stream: false``) returned: a one-element list."""
    body = wire_json(name)
    if RECORDINGS[name]["route"] != "/" or not isinstance(body, dict):
        raise ValueError(f"{name} is not a single /generate-type response")
    return [body]


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse_body(
    chunks: Iterable[Any], *, done: bool = True, space: bool = True, keepalive: bool = False
) -> bytes:
    """An SSE body: ``data: <compact JSON>`` + blank line per chunk, then ``data: [DONE]`` if ``done``.

    ``space=False`` writes ``data:`` (TGI < 2.1.0); ``keepalive=True`` puts a ``:`` comment between events.
    """
    prefix = "data: " if space else "data:"
    events = [prefix + _compact(chunk) for chunk in chunks]
    if done:
        events.append(prefix + "[DONE]")
    separator = "\n\n:\n\n" if keepalive else "\n\n"
    return (separator.join(events) + "\n\n").encode() if events else b""


def generate_stream_events(
    source: str | Mapping[str, Any],
    *,
    details: bool = True,
    input_length: int | None = None,
    first_index: int = 1,
) -> list[dict[str, Any]]:
    """``/generate_stream`` events synthesized from a recorded ``/generate`` response (name or wire object).

    One event per token ``{"index", "token": {id, text, logprob, special}, "generated_text": null,
    "details": null}``; the last one carries ``generated_text`` and, if ``details``, ``{finish_reason,
    generated_tokens, seed}`` plus ``input_length`` when given (TGI >= 2.x always sends it and the 3.3.6 spec
    requires it; the prompt length is not recorded, so pass one). Indexes count from ``first_index``.
    """
    response = wire_json(source) if isinstance(source, str) else dict(source)
    if not isinstance(response, dict) or not response.get("details"):
        raise ValueError("need one /generate response with details")
    info = response["details"]
    events: list[dict[str, Any]] = [
        {
            "index": first_index + i,
            "token": {"id": t["id"], "text": t["text"], "logprob": t["logprob"], "special": t["special"]},
            "generated_text": None,
            "details": None,
        }
        for i, t in enumerate(info["tokens"])
    ]
    events[-1]["generated_text"] = response["generated_text"]
    if details:
        final: dict[str, Any] = {
            "finish_reason": info["finish_reason"],
            "generated_tokens": info["generated_tokens"],
            "seed": info["seed"],
        }
        if input_length is not None:
            final["input_length"] = input_length
        events[-1]["details"] = final
    return events


def generate_stream_body(
    source: str | Mapping[str, Any],
    *,
    details: bool = True,
    input_length: int | None = None,
    first_index: int = 1,
    space: bool = True,
    keepalive: bool = False,
) -> bytes:
    """A ``/generate_stream`` SSE body built from ``generate_stream_events`` (no ``[DONE]``, as TGI)."""
    events = generate_stream_events(
        source, details=details, input_length=input_length, first_index=first_index
    )
    return sse_body(events, done=False, space=space, keepalive=keepalive)
