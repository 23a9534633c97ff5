"""Unit tests of the LlamaIndex LLMs' own logic: message conversion, stream assembly, tool-call parsing,
metadata arithmetic, request arguments, construction, copying and pickling. No server (respx where HTTP is
involved)."""

from __future__ import annotations

import copy
import inspect
import json
import pickle
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from llama_index.core.base.llms.types import AudioBlock
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.base.llms.types import DocumentBlock
from llama_index.core.base.llms.types import ImageBlock
from llama_index.core.base.llms.types import MessageRole
from llama_index.core.base.llms.types import TextBlock
from llama_index.core.base.llms.types import ThinkingBlock
from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks import CBEventType
from llama_index.core.callbacks import LlamaDebugHandler
from llama_index.core.prompts import PromptTemplate
from llama_index.llms.selfhosted import TGI
from llama_index.llms.selfhosted import VLLM
from llama_index.llms.selfhosted import EngineLLM
from llama_index.llms.selfhosted import InvalidToolCallError
from llama_index.llms.selfhosted import LlamaCpp
from llama_index.llms.selfhosted._base import _context_window
from llama_index.llms.selfhosted._convert import ChatStreamAssembler
from llama_index.llms.selfhosted._convert import chat_response
from llama_index.llms.selfhosted._convert import keep_first_tool_call
from llama_index.llms.selfhosted._convert import to_engine_message
from llama_index.llms.selfhosted._convert import tool_selections

from engine_clients import Completion
from engine_clients import End
from engine_clients import EngineInfo
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import Started
from engine_clients import StreamError
from engine_clients import TGIClient
from engine_clients import Token
from engine_clients import ToolCall
from engine_clients import ToolCallDelta
from engine_clients import TopLogprob
from engine_clients import Usage
from engine_clients import VLLMClient
from tests.support import tgi_recordings as rec
from tests.support.fake_engines import chat_answer

ENGINES = [TGI, VLLM, LlamaCpp]
URL = "http://engine.test"


# ---- the engine classes only declare ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", ENGINES)
def test_engine_classes_only_declare_client_and_fields(cls: type[EngineLLM]) -> None:
    methods = [n for n, v in vars(cls).items() if inspect.isfunction(v) and n != "model_post_init"]
    assert methods == []  # model_post_init is pydantic's own
    assert cls.client_class in (TGIClient, VLLMClient, LlamaCppClient)
    own = set(cls.model_fields) - set(EngineLLM.model_fields)
    assert own and own <= set(cls.chat_params) | set(cls.text_params)  # every own field is a sampling field


@pytest.mark.parametrize("cls", ENGINES)
def test_construction_touches_no_network(cls: type[EngineLLM]) -> None:
    with respx.mock(assert_all_mocked=True) as router:
        llm = cls(URL, temperature=0.2, max_tokens=8)
        llm.to_payload()
        llm.to_dict()
        assert llm.class_name() == f"{llm.engine}_llm"
        assert not router.calls


@pytest.mark.parametrize(("cls", "env"), [(TGI, "TGI"), (VLLM, "VLLM"), (LlamaCpp, "LLAMACPP")])
def test_base_url_and_key_from_environment(
    cls: type[EngineLLM], env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(f"{env}_BASE_URL", raising=False)
    with pytest.raises(InvalidRequestError, match=f"{env}_BASE_URL"):
        cls()
    monkeypatch.setenv(f"{env}_BASE_URL", URL + "/")
    monkeypatch.setenv(f"{env}_API_KEY", "env-key")
    llm = cls()
    assert llm.base_url == URL
    assert llm.client.api_key is not None and llm.client.api_key.get_secret_value() == "env-key"


def test_client_injection() -> None:
    client = LlamaCppClient(URL, model="m")
    llm = LlamaCpp(client=client)
    assert llm.client is client and llm.base_url == URL and llm.model == "m"
    with pytest.raises(TypeError, match="LlamaCppClient"):
        LlamaCpp(client=VLLMClient(URL))  # type: ignore[arg-type]


def test_secrets_stay_out_of_serialization_and_payloads() -> None:
    llm = VLLM(URL, api_key="s3cret", headers={"x-token": "t0ken"})
    for text in (llm.to_json(), json.dumps(llm.to_payload()), repr(llm)):
        assert "s3cret" not in text and "t0ken" not in text
    assert llm.client.api_key is not None and llm.client.api_key.get_secret_value() == "s3cret"


def test_copies_share_the_client_and_unpickling_builds_one() -> None:
    llm = LlamaCpp(URL, temperature=0.3, api_key="k")
    assert copy.deepcopy(llm).client is llm.client
    assert llm.model_copy().client is llm.client
    clone = pickle.loads(pickle.dumps(llm))
    assert clone.client is not llm.client and clone.base_url == URL and clone.temperature == 0.3
    assert llm.client is not None  # pickling left the original alone


# ---- metadata arithmetic ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_input", "max_total", "num_output", "expected"),
    [
        (1024, 1024, 256, 1024),  # llama.cpp / vLLM: one limit
        (4095, 4096, 256, 4096),  # TGI defaults: the total bounds it
        (1024, 2048, 256, 1280),  # TGI: the prompt limit bounds it once num_output is reserved
        (None, 8192, 256, 8192),
        (3000, None, 256, 3000),
        (None, None, 256, 3900),  # nothing published: LlamaIndex's default
    ],
)
def test_context_window(max_input: int | None, max_total: int | None, num_output: int, expected: int) -> None:
    info = EngineInfo("x", "m", None, max_input_tokens=max_input, max_total_tokens=max_total)
    assert _context_window(info, num_output) == expected


def test_function_calling_flag_follows_the_server_unless_set() -> None:
    """llama.cpp says whether its chat template handles tools; an explicit field value wins."""
    props = {"default_generation_settings": {"n_ctx": 4096}, "chat_template_caps": {"supports_tool_calls": False}}
    with respx.mock(assert_all_mocked=True) as router:
        router.get(f"{URL}/v1/models").respond(json={"data": [{"id": "m"}]})
        router.get(f"{URL}/props").respond(json=props)
        meta = LlamaCpp(URL).metadata
        assert meta.is_function_calling_model is False
        assert meta.context_window == 4096
        assert LlamaCpp(URL, is_function_calling_model=True).metadata.is_function_calling_model is True


# ---- request arguments -----------------------------------------------------------------------------------


def test_call_kwargs_merge_order() -> None:
    llm = VLLM(
        URL,
        temperature=0.1,
        top_k=4,
        additional_kwargs={"min_tokens": 2, "temperature": 0.2},
        extra_body={"a": 1},
    )
    kw = llm._call_kwargs(llm.chat_params, {"top_k": None, "extra_body": {"b": 2}, "seed": 9})
    assert kw == {"temperature": 0.2, "min_tokens": 2, "seed": 9, "extra_body": {"a": 1, "b": 2}}


def test_unknown_sampling_parameter_is_refused_before_sending() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        llm = TGI(URL)
        with pytest.raises(InvalidRequestError, match="top_k"):
            llm.chat([ChatMessage(role="user", content="hi")], top_k=3)  # not on TGI's chat route
        assert not router.calls


def test_prepare_chat_with_tools_does_not_touch_the_callers_history() -> None:
    from llama_index.core.tools import FunctionTool

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    tool = FunctionTool.from_defaults(add)
    history = [ChatMessage(role="user", content="hi")]
    out = LlamaCpp(URL)._prepare_chat_with_tools(
        [tool], user_msg="2+2?", chat_history=history, tool_required=True
    )
    assert len(history) == 1 and len(out["messages"]) == 2
    assert out["tool_choice"] == "required" and out["tools"][0]["function"]["name"] == "add"
    assert out["parallel_tool_calls"] is False  # llama.cpp takes it
    out = TGI(URL)._prepare_chat_with_tools([tool], tool_choice="add", allow_parallel_tool_calls=True)
    assert out["tool_choice"] == "add" and "parallel_tool_calls" not in out  # TGI does not
    assert "tools" not in LlamaCpp(URL)._prepare_chat_with_tools([], user_msg="hi")


# ---- message conversion ----------------------------------------------------------------------------------


def test_text_and_roles() -> None:
    assert to_engine_message(ChatMessage(role="user", content="hi")) == {"role": "user", "content": "hi"}
    two = ChatMessage(role="developer", blocks=[TextBlock(text="a"), TextBlock(text="b")])
    assert to_engine_message(two) == {"role": "system", "content": "a\nb"}
    assert to_engine_message(ChatMessage(role=MessageRole.CHATBOT, content="x"))["role"] == "assistant"
    thinking = ChatMessage(role="assistant", blocks=[ThinkingBlock(content="hmm"), TextBlock(text="ok")])
    assert to_engine_message(thinking) == {"role": "assistant", "content": "ok", "reasoning": "hmm"}


def test_images_become_content_parts() -> None:
    msg = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="what is this?"),
            ImageBlock(url="https://example.com/cat.png"),
            ImageBlock(image=b"\x89PNG", image_mimetype="image/png"),
        ],
    )
    content = to_engine_message(msg)["content"]
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert content[2]["image_url"]["url"].startswith("data:image/png;base64,")


def test_unsupported_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="DocumentBlock"):
        to_engine_message(ChatMessage(role="user", blocks=[DocumentBlock(data=b"%PDF-1.4")]))


def test_audio_and_path_blocks_become_media_parts(tmp_path: Any) -> None:
    """Bytes are encoded here; paths go to the engine layer, which reads them under its size limit."""
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG")
    msg = ChatMessage(
        role="user",
        blocks=[
            AudioBlock(audio=b"RIFF\x00", format="wav"),
            ImageBlock(path=png),
            AudioBlock(path=png, format="mp3"),
        ],
    )
    content = to_engine_message(msg)["content"]
    assert content[0] == {"type": "audio", "base64": "UklGRgA=", "format": "wav"}
    assert content[1] == {"type": "image", "path": str(png), "mime_type": "image/png"}
    assert content[2] == {"type": "audio", "path": str(png), "format": "mp3"}
    wire = VLLMClient(URL).build_chat([to_engine_message(msg)]).json
    parts = wire["messages"][0]["content"]
    assert parts[0] == {"type": "input_audio", "input_audio": {"data": "UklGRgA=", "format": "wav"}}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}}
    assert parts[2] == {"type": "input_audio", "input_audio": {"data": "iVBORw==", "format": "mp3"}}


def test_assistant_tool_calls_and_tool_results() -> None:
    assistant = ChatMessage(
        role="assistant",
        blocks=[
            TextBlock(text=""),
            ToolCallBlock(tool_call_id="c1", tool_name="f", tool_kwargs={"x": 1}),
            ToolCallBlock(tool_call_id="c2", tool_name="g", tool_kwargs='{"y": 2}'),
        ],
    )
    assert to_engine_message(assistant) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": '{"y": 2}'}},
        ],
    }
    tool = ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "c1"})
    assert to_engine_message(tool) == {"role": "tool", "content": "42", "tool_call_id": "c1"}


def test_tool_calls_from_other_integrations_additional_kwargs() -> None:
    class OpenAIStyle:  # an object with model_dump, like llama-index-llms-openai's
        def model_dump(self) -> dict[str, Any]:
            return {"id": "c9", "type": "function", "function": {"name": "h", "arguments": "{}"}}

    msg = ChatMessage(
        role="assistant",
        content="",
        additional_kwargs={"tool_calls": [OpenAIStyle(), {"id": "c8", "name": "k", "args": {"z": 1}}]},
    )
    calls = to_engine_message(msg)["tool_calls"]
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("c9", "h", "{}"),
        ("c8", "k", '{"z": 1}'),
    ]
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in tool_selections(msg)] == [
        ("c9", "h", {}),
        ("c8", "k", {"z": 1}),
    ]


# ---- responses -------------------------------------------------------------------------------------------


def _completion(**kw: Any) -> Completion:
    base: dict[str, Any] = {"content": "", "finish_reason": "tool_calls", "usage": Usage(5, 3, 8)}
    return Completion(**{**base, **kw})


def test_chat_response_shape() -> None:
    calls = [
        ToolCall("c1", "f", {"x": 1}, '{"x": 1}', 0),
        ToolCall("c2", "g", None, '{"y": ', 1, error="not valid JSON"),
    ]
    response = chat_response(_completion(tool_calls=calls))
    blocks = response.message.blocks
    assert isinstance(blocks[0], TextBlock) and response.message.content == ""
    assert [(b.tool_name, b.tool_kwargs) for b in blocks[1:]] == [("f", {"x": 1}), ("g", '{"y": ')]
    assert response.message.additional_kwargs["tool_calls"][1]["function"]["arguments"] == '{"y": '
    assert response.raw["usage"].items() >= {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}.items()
    assert response.additional_kwargs == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    # a finished response whose call has arguments that are not a JSON object is an error, never {} arguments
    with pytest.raises(InvalidToolCallError, match="not valid JSON") as info:
        tool_selections(response.message)
    assert info.value.calls == [{"id": "c2", "name": "g", "arguments": '{"y": ', "error": "not valid JSON"}]
    broken = chat_response(_completion(tool_calls=[ToolCall("c3", "h", None, "[1, 2]", 0, error="a list")]))
    with pytest.raises(InvalidToolCallError, match=r"h\('\[1, 2\]'\)"):
        tool_selections(broken.message)


@respx.mock(base_url=URL, assert_all_called=False)
def test_tool_call_cut_by_max_tokens_is_not_run_with_empty_arguments(respx_mock: respx.MockRouter) -> None:
    """finish_reason "length" with arguments "{": a FunctionAgent would have run the tool with {}."""
    answer = chat_answer(
        "", [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{"}}]
    )
    answer["choices"][0]["finish_reason"] = "length"
    respx_mock.post("/v1/chat/completions").mock(return_value=httpx.Response(200, json=answer))
    llm = LlamaCpp(URL, model="m")
    response = llm.chat([ChatMessage(role="user", content="weather?")])
    with pytest.raises(InvalidToolCallError, match="cut off by the token limit") as info:
        llm.get_tool_calls_from_response(response, error_on_no_tool_call=False)
    assert info.value.calls[0]["name"] == "get_weather" and info.value.calls[0]["arguments"] == "{"


def test_chat_response_without_usage_lets_token_counting_estimate() -> None:
    response = chat_response(_completion(finish_reason="stop", content="hi", usage=None))
    assert response.raw["usage"] is None and response.additional_kwargs == {}


def test_logprobs() -> None:
    from engine_clients import TokenLogprob

    lp = [TokenLogprob("a", -0.5, 1, [TopLogprob("a", -0.5), TopLogprob("b", -1.5)]), TokenLogprob("c", -0.1)]
    response = chat_response(_completion(content="ac", finish_reason="stop", logprobs=lp))
    assert response.logprobs is not None
    assert [[(p.token, p.logprob) for p in row] for row in response.logprobs] == [
        [("a", -0.5), ("b", -1.5)],
        [("c", -0.1)],
    ]


def test_stream_assembler_accumulates_tool_call_fragments() -> None:
    assembler = ChatStreamAssembler()
    events = [
        Started("vllm", "m", "id"),
        Token("Let me check.", 0),
        ToolCallDelta(0, "c1", "get_weather", '{"ci'),
        ToolCallDelta(0, None, None, 'ty": "Pa'),
        ToolCallDelta(1, "c2", "get_time", ""),
        ToolCallDelta(0, None, None, 'ris"}'),
        ToolCallDelta(1, None, None, "{}"),
        End(
            _completion(
                content="Let me check.",
                tool_calls=[
                    ToolCall("c1", "get_weather", {"city": "Paris"}, '{"city": "Paris"}', 0),
                    ToolCall("c2", "get_time", {}, "{}", 1),
                ],
            )
        ),
    ]
    out = [r for r in (assembler.feed(e) for e in events) if r is not None]
    assert len(out) == len(events) - 1  # nothing for Started
    assert [r.delta for r in out] == ["Let me check.", "", "", "", "", "", ""]
    args = [
        [c["function"]["arguments"] for c in r.message.additional_kwargs.get("tool_calls", [])] for r in out
    ]
    assert args == [
        [],
        ['{"ci'],
        ['{"city": "Pa'],
        ['{"city": "Pa', ""],
        ['{"city": "Paris"}', ""],
        ['{"city": "Paris"}', "{}"],
        ['{"city": "Paris"}', "{}"],
    ]
    # partial arguments parse as far as LlamaIndex's partial-JSON parser goes
    assert [set(s.tool_kwargs) for s in tool_selections(out[2].message)] == [{"city"}]
    assert out[1].message.additional_kwargs["tool_calls"][0]["function"]["arguments"] == '{"ci'  # not mutated
    final = out[-1]
    assert [(s.tool_id, s.tool_name, s.tool_kwargs) for s in tool_selections(final.message)] == [
        ("c1", "get_weather", {"city": "Paris"}),
        ("c2", "get_time", {}),
    ]
    assert final.message.content == "Let me check." and final.raw["usage"]["total_tokens"] == 8


def test_keep_first_tool_call() -> None:
    calls = [ToolCall("c1", "f", {}, "{}", 0), ToolCall("c2", "g", {}, "{}", 1)]
    response = keep_first_tool_call(chat_response(_completion(tool_calls=calls)))
    assert [s.tool_name for s in tool_selections(response.message)] == ["f"]
    assert len(response.message.additional_kwargs["tool_calls"]) == 1


def test_get_tool_calls_error_on_no_tool_call() -> None:
    llm = LlamaCpp(URL)
    plain = ChatResponse(message=ChatMessage(role="assistant", content="hi"))
    assert llm.get_tool_calls_from_response(plain, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="0 tool calls"):
        llm.get_tool_calls_from_response(plain)


# ---- routes chosen by complete() -------------------------------------------------------------------------

TEXT = "test_flash_llama/test_flash_llama_simple"
CHAT = "test_continue_final_message/test_llama_completion_single_prompt"


@respx.mock(base_url=URL, assert_all_called=False)
def test_not_a_chat_model_uses_the_native_route_with_completion_to_prompt(
    respx_mock: respx.MockRouter,
) -> None:
    generate = respx_mock.post("/generate").mock(return_value=httpx.Response(200, json=rec.wire_json(TEXT)))
    llm = TGI(
        URL,
        is_chat_model=False,
        context_window=2048,
        model="m",
        completion_to_prompt=lambda p: f"<s>[INST] {p} [/INST]",
    )
    assert llm.predict(PromptTemplate("Tell me {x}"), x="more") == rec.RECORDINGS[TEXT]["content"]
    assert json.loads(generate.calls.last.request.content)["inputs"] == "<s>[INST] Tell me more [/INST]"
    llm.complete("raw", formatted=True)
    assert json.loads(generate.calls.last.request.content)["inputs"] == "raw"


@respx.mock(base_url=URL, assert_all_called=False)
def test_a_chat_model_completes_through_chat(respx_mock: respx.MockRouter) -> None:
    chat = respx_mock.post("/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=rec.wire_json(CHAT))
    )
    llm = TGI(URL, system_prompt="Be brief.")
    assert llm.complete("Hi").text == rec.RECORDINGS[CHAT]["content"]
    assert json.loads(chat.calls.last.request.content)["messages"] == [{"role": "user", "content": "Hi"}]


# ---- errors ----------------------------------------------------------------------------------------------


@respx.mock(base_url=URL, assert_all_called=False)
def test_a_cut_stream_raises_stream_error_and_ends_the_llm_event(respx_mock: respx.MockRouter) -> None:
    chunks = rec.wire_chunks("test_tools_llama/test_flash_llama_grammar_tools_sea_creatures_stream_none")[:5]
    respx_mock.post("/v1/chat/completions").mock(
        return_value=httpx.Response(200, content=rec.sse_body(chunks, done=False), headers=rec.SSE_HEADERS)
    )
    llm = TGI(URL, max_retries=0)
    debug = LlamaDebugHandler()
    llm.callback_manager = CallbackManager([debug])
    got: list[str] = []
    with pytest.raises(StreamError) as info:
        for r in llm.stream_chat([ChatMessage(role="user", content="story")]):
            got.append(r.delta or "")
    assert info.value.partial_text == "".join(got) != ""
    (pair,) = debug.get_event_pairs(CBEventType.LLM)
    assert pair[1].payload is not None and "exception" in pair[1].payload


def test_quickstart_notebook_is_committed_without_outputs() -> None:
    import nbformat

    path = Path(__file__).resolve().parents[2] / "notebooks" / "llamaindex_quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert all("OPENAI" not in c.source for c in code)
