"""LangChain: images and audio as standard content blocks, the typed errors for inputs a server cannot take,
and ``profile`` read lazily from the server (respx; no real server)."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from typing import Any

import httpx
import pytest
import respx
from langchain_core.exceptions import ModelInvalidRequestError
from langchain_core.messages import HumanMessage
from langchain_selfhosted import ChatLlamaCpp
from langchain_selfhosted import ChatTGI
from langchain_selfhosted import ChatVLLM
from langchain_selfhosted.errors import UnsupportedInputError

import engine_clients
from tests.support.fake_engines import chat_answer

URL = "http://engine.test"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAABgAAAAQCAIAAACDRijCAAAAGklEQVR4nGM4IWdDFcQwatCoQaMGjRpEGQIAaL+zEPAuIC0AAAAASUVORK5CYII="
WAV_B64 = base64.b64encode(b"RIFF\x24\x00\x00\x00WAVE").decode()
LLAMA_PROPS = {
    "default_generation_settings": {"n_ctx": 4096, "params": {"n_predict": -1}},
    "modalities": {"vision": True, "audio": False},
    "chat_template": "{{ messages }}",
    "chat_template_caps": {"supports_tool_calls": True},
}


def _sent(route: respx.Route) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(route.calls.last.request.content)
    return body


BLOCKS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"type": "image", "base64": PNG_B64, "mime_type": "image/png"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ),
    (
        {"type": "image", "source_type": "base64", "data": PNG_B64, "mime_type": "image/png"},  # v0 form
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ),
    (
        {"type": "image", "url": "https://example.com/cat.png"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ),
    (
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
    ),
    (
        {"type": "audio", "base64": WAV_B64, "mime_type": "audio/wav"},
        {"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}},
    ),
    (
        {"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": WAV_B64, "format": "wav"}},
    ),
]


@pytest.mark.parametrize(("block", "wire"), BLOCKS)
def test_content_blocks_reach_the_wire_as_openai_parts(block: dict[str, Any], wire: dict[str, Any]) -> None:
    with respx.mock(assert_all_mocked=True) as router:
        route = router.post(f"{URL}/v1/chat/completions").respond(json=chat_answer("ok"))
        ChatVLLM(base_url=URL, model="m").invoke([HumanMessage([{"type": "text", "text": "hi"}, block])])
    assert _sent(route)["messages"][0]["content"] == [{"type": "text", "text": "hi"}, wire]


def test_tgi_refuses_audio_with_a_langchain_error() -> None:
    audio = {"type": "audio", "base64": WAV_B64, "mime_type": "audio/wav"}
    with respx.mock(assert_all_mocked=True), pytest.raises(UnsupportedInputError) as info:  # nothing sent
        ChatTGI(base_url=URL).invoke([HumanMessage([audio])])
    assert isinstance(info.value, ModelInvalidRequestError)
    assert info.value.kind == "audio"


def test_text_only_server_answer_is_a_langchain_invalid_request() -> None:
    body = {
        "error": {
            "code": 500,
            "message": "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
            "type": "server_error",
        }
    }
    with respx.mock(assert_all_mocked=True) as router:
        router.post(f"{URL}/v1/chat/completions").mock(return_value=httpx.Response(500, json=body))
        with pytest.raises(ModelInvalidRequestError) as info:
            ChatLlamaCpp(base_url=URL, model="m").invoke(
                [HumanMessage([{"type": "image", "base64": PNG_B64, "mime_type": "image/png"}])]
            )
    assert isinstance(info.value, engine_clients.UnsupportedInputError)
    assert "--mmproj" in str(info.value)


@pytest.mark.parametrize(
    "block",
    [{"type": "image", "file_id": "f-1"}, {"type": "audio", "base64": WAV_B64}],  # by id; no mime_type
)
def test_unsendable_blocks_are_refused_as_invalid_requests(block: dict[str, Any]) -> None:
    with respx.mock(assert_all_mocked=True), pytest.raises(ModelInvalidRequestError):
        ChatVLLM(base_url=URL, model="m").invoke([HumanMessage([block])])


# ---- profile ---------------------------------------------------------------------------------------------


def test_profile_is_read_from_the_server_on_first_use_only() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        models = router.get(f"{URL}/v1/models").respond(json={"data": [{"id": "m"}]})
        props = router.get(f"{URL}/props").respond(json=LLAMA_PROPS)
        model = ChatLlamaCpp(base_url=URL)
        assert not models.called  # constructing asks nothing
        assert model.profile is not None
        assert model.profile.get("structured_output") is True
        assert dict(model.profile) == {
            "text_inputs": True,
            "text_outputs": True,
            "max_input_tokens": 4096,
            "max_output_tokens": 4096,
            "image_inputs": True,
            "image_url_inputs": True,
            "audio_inputs": False,
            "tool_calling": True,
            "tool_choice": True,
            "structured_output": True,
            "constrained_tool_arguments": True,
            "reasoning_output": False,
        }
        assert model.profile["image_inputs"] is True
        assert (models.call_count, props.call_count) == (1, 1)
        assert model.model_name == "m"  # the same read serves model discovery


def test_unreachable_server_leaves_the_profile_empty_and_asks_again() -> None:
    with respx.mock(assert_all_mocked=True) as router:
        models = router.get(f"{URL}/v1/models").mock(side_effect=httpx.ConnectError("refused"))
        model = ChatVLLM(base_url=URL, max_retries=0)
        assert model.profile is not None
        assert model.profile.get("structured_output") is None
        models.mock(return_value=httpx.Response(200, json={"data": [{"id": "m", "max_model_len": 2048}]}))
        router.get(f"{URL}/version").respond(json={"version": "0.32.0"})
        assert model.profile.get("max_input_tokens") == 2048
        assert "image_inputs" not in model.profile  # vLLM's discovery routes do not say


def test_an_explicit_profile_is_kept() -> None:
    with respx.mock(assert_all_mocked=True):
        model = ChatVLLM(base_url=URL, profile={"structured_output": False})
        assert model.profile == {"structured_output": False}


def test_profile_survives_copies_and_pickles_without_asking() -> None:
    with respx.mock(assert_all_mocked=True):
        model = ChatLlamaCpp(base_url=URL, model="m")
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert other.base_url == URL
