"""Images and audio in chat messages (issue 12): what each engine gets on the wire, what is refused before
sending, how "this server cannot take images" answers map to UnsupportedInputError, and the capabilities
each dialect reads from the server's discovery routes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from engine_clients import ChatMessage
from engine_clients import InvalidRequestError
from engine_clients import LlamaCppClient
from engine_clients import MediaTooLargeError
from engine_clients import TGIClient
from engine_clients import ToolCall
from engine_clients import UnsupportedInputError
from engine_clients import VLLMClient
from engine_clients.dialects import LlamaCppDialect
from engine_clients.dialects import TGIDialect
from engine_clients.dialects import VLLMDialect
from tests.support.openapi import validate_request

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABgAAAAQCAIAAACDRijCAAAAGklEQVR4nGM4IWdDFcQwatCoQaMGjRpEGQIAaL+zEPAuIC0AAAAASUVORK5CYII="
)
PNG_B64 = base64.b64encode(PNG).decode()
DATA_URL = f"data:image/png;base64,{PNG_B64}"
WAV_B64 = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVEfmt ").decode()
URL = "http://engine.test"
CLIENTS = [TGIClient, VLLMClient, LlamaCppClient]


def _user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, *parts]}]


def _parts(client: Any, messages: Any) -> list[dict[str, Any]]:
    body = client.build_chat(messages).json
    content: list[dict[str, Any]] = body["messages"][-1]["content"]
    return content[1:]


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    path = tmp_path / "red.png"
    path.write_bytes(PNG)
    return path


# ---- images: every input form becomes one OpenAI image_url part ------------------------------------------


@pytest.mark.parametrize("cls", CLIENTS)
def test_image_forms_become_image_url_parts(cls: Any, png_file: Path) -> None:
    client = cls(URL)
    forms = [
        {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "image_url", "image_url": DATA_URL},  # the bare-string form some producers send
        {"type": "image", "base64": PNG_B64, "mime_type": "image/png"},
        {"type": "image", "data": PNG},  # raw bytes
        {"type": "image", "path": str(png_file)},  # a local file, read and encoded on the client
        {"type": "image_url", "image_url": {"url": png_file.as_uri()}},  # file:// URL
    ]
    for form in forms:
        assert _parts(client, _user(form)) == [{"type": "image_url", "image_url": {"url": DATA_URL}}], form


@pytest.mark.parametrize("cls", CLIENTS)
def test_remote_image_urls_are_left_for_the_server(cls: Any) -> None:
    part = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    assert _parts(cls(URL), _user(part)) == [part]


def test_chat_message_objects_carry_images(png_file: Path) -> None:
    msg = ChatMessage("user", [{"type": "text", "text": "hi"}, {"type": "image", "path": str(png_file)}])
    assert _parts(VLLMClient(URL), [msg]) == [{"type": "image_url", "image_url": {"url": DATA_URL}}]


def test_caller_messages_are_not_modified(png_file: Path) -> None:
    messages = _user({"type": "image", "path": str(png_file)})
    before = json.dumps(messages)
    VLLMClient(URL).build_chat(messages)
    assert json.dumps(messages) == before


def test_tgi_image_request_fits_its_spec(png_file: Path) -> None:
    body = TGIClient(URL).build_chat(_user({"type": "image", "path": str(png_file)}), max_tokens=8).json
    validate_request("/v1/chat/completions", body, strict=True)
    remote = _user({"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}})
    validate_request("/v1/chat/completions", TGIClient(URL).build_chat(remote).json, strict=True)


# ---- audio ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [VLLMClient, LlamaCppClient])
def test_audio_forms_become_input_audio_parts(cls: Any, tmp_path: Path) -> None:
    wav = tmp_path / "clip.wav"
    wav.write_bytes(base64.b64decode(WAV_B64))
    expected = [{"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}}]
    forms = [
        {"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}},
        {"type": "audio", "base64": WAV_B64, "mime_type": "audio/wav"},  # LangChain v1 audio block
        {"type": "audio", "data": base64.b64decode(WAV_B64), "format": "wav"},
        {"type": "audio", "path": str(wav)},  # the format from the suffix
    ]
    for form in forms:
        assert _parts(cls(URL), _user(form)) == expected, form


def test_audio_without_a_format_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="format"):
        VLLMClient(URL).build_chat(_user({"type": "audio", "base64": WAV_B64}))


def test_audio_by_http_url_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="download it"):
        VLLMClient(URL).build_chat(
            _user({"type": "audio", "url": "https://example.com/a.wav", "format": "wav"})
        )


@respx.mock(assert_all_called=False)
def test_tgi_refuses_audio_before_sending(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post(f"{URL}/v1/chat/completions")
    audio = {"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}}
    with pytest.raises(UnsupportedInputError) as info:
        TGIClient(URL).chat(_user(audio))
    assert info.value.kind == "audio"
    assert info.value.status_code is None
    assert "text and image_url" in str(info.value)
    assert not route.called


# ---- limits and unreadable inputs ------------------------------------------------------------------------


def test_oversized_image_is_refused_with_its_size(png_file: Path) -> None:
    client = LlamaCppClient(URL, max_media_bytes=len(PNG) - 1)
    for form in (
        {"type": "image", "path": str(png_file)},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "image", "data": PNG},
    ):
        with pytest.raises(MediaTooLargeError) as info:
            client.build_chat(_user(form))
        assert info.value.size == len(PNG)
        assert info.value.limit == len(PNG) - 1
        assert "message 0, part 1" in str(info.value)
        assert isinstance(info.value, InvalidRequestError)
    LlamaCppClient(URL, max_media_bytes=len(PNG)).build_chat(_user({"type": "image", "path": str(png_file)}))


def test_default_limit_is_twenty_megabytes() -> None:
    big = "A" * (28 * 1024 * 1024)  # 21 MiB decoded
    with pytest.raises(MediaTooLargeError):
        VLLMClient(URL).build_chat(
            _user({"type": "image_url", "image_url": {"url": "data:image/png;base64," + big}})
        )


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(InvalidRequestError, match=r"nope\.png"):
        VLLMClient(URL).build_chat(_user({"type": "image", "path": str(missing)}))


def test_bad_base64_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="not valid base64"):
        VLLMClient(URL).build_chat(_user({"type": "image", "base64": "not base64!"}))


# ---- "this server cannot take images": UnsupportedInputError, never retried -----------------------------

LLAMA_IMAGE = {
    "error": {
        "code": 500,
        "message": "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
        "type": "server_error",
    }
}
LLAMA_AUDIO = {
    "error": {
        "code": 500,
        "message": "audio input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
        "type": "server_error",
    }
}
VLLM_IMAGE = {
    "error": {
        "message": "At most 0 image(s) may be provided in one prompt.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
}
VLLM_TEXT_ONLY = {
    "error": {
        "message": "scripted-tiny is not a multimodal model",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
}
TGI_IMAGE = {
    "error": "Input validation error: image modality is not supported by model",
    "error_type": "validation",
}


@pytest.mark.parametrize(
    ("cls", "status", "body", "kind", "fix"),
    [
        (LlamaCppClient, 500, LLAMA_IMAGE, "image", "--mmproj"),
        (LlamaCppClient, 500, LLAMA_AUDIO, "audio", "--mmproj"),
        (VLLMClient, 400, VLLM_IMAGE, "image", "multimodal"),
        (VLLMClient, 400, VLLM_TEXT_ONLY, "media", "multimodal"),  # vLLM 0.32, image or audio alike
        (TGIClient, 422, TGI_IMAGE, "image", "vision-language model"),
    ],
)
def test_unsupported_input_answers_map_to_the_typed_error(
    cls: Any, status: int, body: dict[str, Any], kind: str, fix: str
) -> None:
    with respx.mock:
        route = respx.post(f"{URL}/v1/chat/completions").mock(return_value=httpx.Response(status, json=body))
        with pytest.raises(UnsupportedInputError) as info:
            cls(URL, max_retries=3).chat(_user({"type": "image_url", "image_url": {"url": DATA_URL}}))
    err = info.value
    assert err.kind == kind
    assert err.status_code == status
    assert fix in str(err)
    assert route.call_count == 1  # a 500 of this kind is not a transient failure


def test_unrelated_500_is_still_an_internal_error() -> None:
    err = LlamaCppDialect().parse_error(500, b'{"error":{"code":500,"message":"boom","type":"server_error"}}')
    assert not isinstance(err, UnsupportedInputError)


def test_mid_stream_error_event_maps_too() -> None:
    err = LlamaCppDialect().event_error(LLAMA_IMAGE)
    assert isinstance(err, UnsupportedInputError)
    assert err.kind == "image"


# ---- a past tool call whose arguments are not JSON ---------------------------------------------------------


@pytest.mark.parametrize("cls", CLIENTS)
def test_history_tool_call_with_broken_arguments_is_refused(cls: Any) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    with pytest.raises(InvalidRequestError, match=r"message 1 \(assistant\).*'get_weather'.*c1"):
        cls(URL).build_chat(messages)


def test_history_tool_call_objects_are_checked_too() -> None:
    call = ToolCall(id="c1", name="f", arguments=None, raw_arguments='{"a": ', error="cut")
    with pytest.raises(InvalidRequestError, match="message 1"):
        VLLMClient(URL).build_chat([ChatMessage("user", "hi"), ChatMessage("assistant", None, [call])])


def test_history_tool_call_with_valid_arguments_passes() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    body = VLLMClient(URL).build_chat([{"role": "assistant", "content": None, "tool_calls": [call]}]).json
    assert body["messages"][0]["tool_calls"] == [call]


# ---- capabilities from the discovery routes -----------------------------------------------------------------

LLAMA_PROPS = {
    "default_generation_settings": {"n_ctx": 8192, "params": {"n_predict": -1}},
    "modalities": {"vision": True, "video": True, "audio": False},
    "chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}",
    "chat_template_caps": {"supports_tool_calls": True, "supports_tools": True},
    "build_info": "b7000-abc",
}


def test_llamacpp_capabilities_from_props() -> None:
    info = LlamaCppDialect().parse_info([{"data": [{"id": "m"}]}, LLAMA_PROPS])
    assert (info.image_inputs, info.audio_inputs, info.tool_calling) == (True, False, True)
    assert info.reasoning is False
    assert info.structured_output is True
    assert info.max_output_tokens == 8192
    thinking = {**LLAMA_PROPS, "chat_template": "<think>{{ x }}</think>", "modalities": {"vision": False}}
    thinking["default_generation_settings"] = {"n_ctx": 4096, "params": {"n_predict": 512}}
    info = LlamaCppDialect().parse_info([{"data": [{"id": "m"}]}, thinking])
    assert (info.image_inputs, info.reasoning, info.max_output_tokens) == (False, True, 512)


def test_llamacpp_without_props_leaves_capabilities_unknown() -> None:
    info = LlamaCppDialect().parse_info([{"data": [{"id": "m"}]}, None])
    assert (info.image_inputs, info.audio_inputs, info.tool_calling, info.reasoning) == (None,) * 4


def test_vllm_capabilities_from_models() -> None:
    info = VLLMDialect().parse_info([{"data": [{"id": "m", "max_model_len": 2048}]}, {"version": "0.32.0"}])
    assert info.max_output_tokens == 2048
    assert info.structured_output is True
    assert (info.image_inputs, info.audio_inputs, info.tool_calling, info.reasoning) == (None,) * 4


def test_tgi_capabilities_from_info() -> None:
    base = {"model_id": "m", "max_input_tokens": 1024, "max_total_tokens": 2048, "version": "3.3.6"}
    vlm = TGIDialect().parse_info([{**base, "model_pipeline_tag": "image-text-to-text"}])
    assert (vlm.image_inputs, vlm.audio_inputs, vlm.tool_calling) == (True, False, True)
    assert vlm.max_output_tokens == 2047
    text = TGIDialect().parse_info([{**base, "model_pipeline_tag": "text-generation"}])
    assert text.image_inputs is False
    assert TGIDialect().parse_info([base]).image_inputs is None
