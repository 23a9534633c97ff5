"""What real servers do with images, checked with plain httpx (not the package's client).

The tiny vision models answer " Hello world." greedily, with or without images: on llama-server
(``vision_gguf``, LLaVA-style) each image adds 16 prompt tokens, on vLLM (``vision_hf_model``, Idefics3-style) 20.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

import httpx
import pytest

from engine_clients.testing import VISION_IMAGE_TOKENS
from engine_clients.testing import VLLM_VISION_IMAGE_TOKENS
from engine_clients.testing import EngineServer


def _png(width: int = 24, height: int = 16, rgb: tuple[int, int, int] = (200, 30, 60)) -> bytes:
    """A solid-colour RGB PNG, written by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()
PNG_B64 = base64.b64encode(PNG).decode()
DATA_URL = "data:image/png;base64," + PNG_B64
PROMPT = "What is in the picture?"


def _image_part(url: str = DATA_URL) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def _user(*images: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": PROMPT}, *images]}]


def _post_chat(server: EngineServer, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    body = {"model": server.model, "messages": messages, "temperature": 0, "max_tokens": 16, **extra}
    return httpx.post(
        f"{server.base_url}/v1/chat/completions", json=body, headers=server.headers, timeout=120
    )


def _chat(server: EngineServer, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    response = _post_chat(server, messages, **extra)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _assert_scripted(body: dict[str, Any], max_tokens: int = 16) -> None:
    choice = body["choices"][0]
    assert choice["message"]["content"] == " Hello world."
    assert choice["finish_reason"] == "stop"
    assert 0 < body["usage"]["completion_tokens"] <= max_tokens


# --- llama-server with --mmproj ------------------------------------------------------------------------------


def test_llama_props_report_vision(llama_vision_server: EngineServer) -> None:
    props = httpx.get(f"{llama_vision_server.base_url}/props", timeout=10).json()
    # "video" comes with any vision projector in this build (decoding video needs ffprobe on PATH)
    assert props["modalities"] == {"vision": True, "video": True, "audio": False}
    # the marker that stands for one media item in a native /completion prompt: random per server start
    assert props["media_marker"].startswith("<__media_")
    assert props["media_marker"].endswith("__>")
    assert props["media_marker"] != "<__media__>"


def test_llama_models_report_input_modalities(llama_vision_server: EngineServer) -> None:
    body = httpx.get(f"{llama_vision_server.base_url}/v1/models", timeout=10).json()
    assert body["data"][0]["architecture"] == {
        "input_modalities": ["text", "image", "video"],
        "output_modalities": ["text"],
    }
    assert "multimodal" in body["models"][0]["capabilities"]


def test_llama_text_only_props_report_no_vision(llama_server: EngineServer) -> None:
    props = httpx.get(f"{llama_server.base_url}/props", timeout=10).json()
    assert props["modalities"] == {"vision": False, "video": False, "audio": False}
    body = httpx.get(f"{llama_server.base_url}/v1/models", timeout=10).json()
    assert body["data"][0]["architecture"]["input_modalities"] == ["text"]


def test_llama_chat_with_image(llama_vision_server: EngineServer) -> None:
    _assert_scripted(_chat(llama_vision_server, _user(_image_part())))


def test_llama_image_adds_prompt_tokens(llama_vision_server: EngineServer) -> None:
    without = _chat(llama_vision_server, _user())
    one = _chat(llama_vision_server, _user(_image_part()))
    two = _chat(llama_vision_server, _user(_image_part(), _image_part()))
    _assert_scripted(without)
    base = without["usage"]["prompt_tokens"]
    assert one["usage"]["prompt_tokens"] == base + VISION_IMAGE_TOKENS
    assert two["usage"]["prompt_tokens"] == base + 2 * VISION_IMAGE_TOKENS


def test_llama_image_chat_is_deterministic(llama_vision_server: EngineServer) -> None:
    messages = _user(_image_part(_data_url(_png(40, 40, (10, 200, 10)))))
    first = _chat(llama_vision_server, messages)
    second = _chat(llama_vision_server, messages)
    assert first["choices"][0]["message"] == second["choices"][0]["message"]


def test_llama_image_chat_respects_max_tokens(llama_vision_server: EngineServer) -> None:
    body = _chat(llama_vision_server, _user(_image_part()), max_tokens=2)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2
    assert choice["message"]["content"] == " Hello world"


def _stream_chat(server: EngineServer, messages: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    body = {"model": server.model, "messages": messages, "temperature": 0, "max_tokens": 16, "stream": True}
    chunks = []
    url = f"{server.base_url}/v1/chat/completions"
    with httpx.stream("POST", url, json={**body, **extra}, headers=server.headers, timeout=120) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[len("data: ") :]))
    return chunks


def test_llama_image_chat_stream(llama_vision_server: EngineServer) -> None:
    """Streams with an image; usage only with ``include_usage`` (a last ``choices: []`` chunk) in this build,
    while the finish chunk always carries ``timings`` whose ``prompt_n`` counts the image tokens too."""
    expected = _chat(llama_vision_server, _user(_image_part()))["usage"]["prompt_tokens"]
    chunks = _stream_chat(llama_vision_server, _user(_image_part()))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == " Hello world."
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["timings"]["prompt_n"] + chunks[-1]["timings"]["cache_n"] == expected

    chunks = _stream_chat(llama_vision_server, _user(_image_part()), stream_options={"include_usage": True})
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == expected


def test_llama_text_only_server_refuses_image(llama_server: EngineServer) -> None:
    response = _post_chat(llama_server, _user(_image_part()))
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": 500,
            "message": "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
            "type": "server_error",
        }
    }


def test_llama_vision_server_refuses_audio(llama_vision_server: EngineServer) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": PNG_B64, "format": "wav"}}
    response = _post_chat(llama_vision_server, _user(audio))
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["message"].startswith("audio input is not supported")
    assert error["type"] == "server_error"


def test_llama_native_completion_multimodal(llama_vision_server: EngineServer) -> None:
    """``/completion`` takes ``{"prompt_string", "multimodal_data": [base64]}`` with the server's media marker."""
    marker = httpx.get(f"{llama_vision_server.base_url}/props", timeout=10).json()["media_marker"]
    url = f"{llama_vision_server.base_url}/completion"
    text = "<|im_start|>user\n{}Describe.<|im_end|>\n<|im_start|>assistant\n"
    plain = httpx.post(url, json={"prompt": text.format(""), "n_predict": 8, "temperature": 0}, timeout=120)
    assert plain.status_code == 200, plain.text
    prompt = {"prompt_string": text.format(marker), "multimodal_data": [PNG_B64]}
    response = httpx.post(url, json={"prompt": prompt, "n_predict": 8, "temperature": 0}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content"] == " Hello world."
    assert body["tokens_evaluated"] == plain.json()["tokens_evaluated"] + VISION_IMAGE_TOKENS


def test_llama_native_completion_needs_the_servers_marker(llama_vision_server: EngineServer) -> None:
    """The fixed ``<__media__>`` of older builds is plain text here: no marker matches the image."""
    prompt = {"prompt_string": "<__media__>Describe.", "multimodal_data": [PNG_B64]}
    url = f"{llama_vision_server.base_url}/completion"
    response = httpx.post(url, json={"prompt": prompt, "n_predict": 4}, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": 400,
        "message": "Failed to tokenize prompt",
        "type": "invalid_request_error",
    }


def test_llama_oai_completions_take_no_multimodal_prompt(llama_vision_server: EngineServer) -> None:
    marker = httpx.get(f"{llama_vision_server.base_url}/props", timeout=10).json()["media_marker"]
    prompt = {"prompt_string": marker + "Describe.", "multimodal_data": [PNG_B64]}
    url = f"{llama_vision_server.base_url}/v1/completions"
    response = httpx.post(url, json={"prompt": prompt, "max_tokens": 4}, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_llama_native_completion_multimodal_on_text_only_server(llama_server: EngineServer) -> None:
    prompt = {"prompt_string": "<__media__>Describe.", "multimodal_data": [PNG_B64]}
    url = f"{llama_server.base_url}/completion"
    response = httpx.post(url, json={"prompt": prompt, "n_predict": 4}, timeout=60)
    assert response.status_code >= 400
    assert "does not support multimodal" in response.json()["error"]["message"]


def test_llama_undecodable_image(llama_vision_server: EngineServer) -> None:
    bad = "data:image/png;base64," + base64.b64encode(b"not an image").decode()
    response = _post_chat(llama_vision_server, _user(_image_part(bad)))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": 400,
        "message": "Failed to load image or audio file",
        "type": "invalid_request_error",
    }


def test_llama_fetches_http_image_urls_itself(llama_vision_server: EngineServer) -> None:
    """An http(s) image URL is downloaded by the server; one it cannot reach gives a 500."""
    response = _post_chat(llama_vision_server, _user(_image_part("http://127.0.0.1:9/missing.png")))
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": 500,
        "message": "error: cannot make GET request",
        "type": "server_error",
    }


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


# --- vLLM ----------------------------------------------------------------------------------------------------

# The first test to use a vLLM fixture starts that server (minutes on 2 busy cores, beyond the default timeout).
SLOW_START = pytest.mark.timeout(900)


@SLOW_START
def test_vllm_chat_with_image(vllm_vision_server: EngineServer) -> None:
    _assert_scripted(_chat(vllm_vision_server, _user(_image_part())))


@SLOW_START
def test_vllm_image_adds_prompt_tokens(vllm_vision_server: EngineServer) -> None:
    without = _chat(vllm_vision_server, _user())
    one = _chat(vllm_vision_server, _user(_image_part()))
    two = _chat(vllm_vision_server, _user(_image_part(), _image_part()))
    _assert_scripted(without)
    _assert_scripted(two)
    base = without["usage"]["prompt_tokens"]
    assert one["usage"]["prompt_tokens"] == base + VLLM_VISION_IMAGE_TOKENS
    assert two["usage"]["prompt_tokens"] == base + 2 * VLLM_VISION_IMAGE_TOKENS


@SLOW_START
def test_vllm_tokenize_counts_image_tokens(vllm_vision_server: EngineServer) -> None:
    """``/tokenize`` with chat messages expands images the same way as a request does."""
    url = f"{vllm_vision_server.base_url}/tokenize"
    body = {"model": vllm_vision_server.model, "messages": _user(_image_part())}
    response = httpx.post(url, json=body, timeout=60)
    assert response.status_code == 200, response.text
    expected = _chat(vllm_vision_server, _user(_image_part()))["usage"]["prompt_tokens"]
    assert response.json()["count"] == expected


@SLOW_START
def test_vllm_image_chat_is_deterministic_and_bounded(vllm_vision_server: EngineServer) -> None:
    messages = _user(_image_part(_data_url(_png(40, 40, (10, 200, 10)))))
    assert _chat(vllm_vision_server, messages)["choices"] == _chat(vllm_vision_server, messages)["choices"]
    body = _chat(vllm_vision_server, messages, max_tokens=2)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] == " Hello world"
    assert body["usage"]["completion_tokens"] == 2


@SLOW_START
def test_vllm_limit_mm_per_prompt(vllm_vision_server: EngineServer) -> None:
    response = _post_chat(vllm_vision_server, _user(_image_part(), _image_part(), _image_part()))
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "At most 2 image(s) may be provided in one prompt. (parameter=image)",
            "type": "BadRequestError",
            "param": "image",
            "code": 400,
        }
    }


@SLOW_START
def test_vllm_vision_model_refuses_audio(vllm_vision_server: EngineServer) -> None:
    audio = {"type": "input_audio", "input_audio": {"data": PNG_B64, "format": "wav"}}
    response = _post_chat(vllm_vision_server, _user(audio))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == "At most 0 audio(s) may be provided in one prompt. (parameter=audio)"
    assert error["param"] == "audio"


@SLOW_START
def test_vllm_undecodable_image(vllm_vision_server: EngineServer) -> None:
    bad = "data:image/png;base64," + base64.b64encode(b"not an image").decode()
    response = _post_chat(vllm_vision_server, _user(_image_part(bad)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("Failed to load image: cannot identify image file")
    assert error["type"] == "BadRequestError"


@SLOW_START
def test_vllm_text_only_server_refuses_image(vllm_server: EngineServer) -> None:
    response = _post_chat(vllm_server, _user(_image_part()))
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": f"{vllm_server.model} is not a multimodal model",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
