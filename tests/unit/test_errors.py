"""Every error shape of ENGINES.md maps onto the typed hierarchy."""

import json
import pickle
from typing import Any

import httpx
import pytest
import respx

from engine_clients import AuthenticationError
from engine_clients import BadRequestError
from engine_clients import ContextWindowExceededError
from engine_clients import EngineUnavailableError
from engine_clients import InternalServerError
from engine_clients import LlamaCppClient
from engine_clients import ModelLoadingError
from engine_clients import NotFoundError
from engine_clients import RateLimitError
from engine_clients import TGIClient
from engine_clients import VLLMClient
from engine_clients.dialects import LlamaCppDialect
from engine_clients.dialects import TGIDialect
from engine_clients.dialects import VLLMDialect

CASES: list[tuple[Any, int, bytes, type, str]] = [
    # TGI flat {error, error_type}
    (TGIDialect(), 422, b'{"error":"Input validation error: `stop` supports up to 4 stop sequences. Given: 5",'
     b'"error_type":"validation"}', BadRequestError, "validation"),
    (TGIDialect(), 429, b'{"error":"Model is overloaded","error_type":"overloaded"}', RateLimitError, "overloaded"),
    (TGIDialect(), 424, b'{"error":"Request failed during generation","error_type":"generation"}',
     InternalServerError, "generation"),
    (TGIDialect(), 401, b"", AuthenticationError, ""),  # empty-body 401
    # axum text/plain 422
    (TGIDialect(), 422, b"Failed to deserialize the JSON body into the target type: messages: invalid type",
     BadRequestError, ""),
    (TGIDialect(), 503, b'{"error":"unhealthy","error_type":"healthcheck"}', EngineUnavailableError, "healthcheck"),
    # vLLM nested (>= 0.10.1), old flat, 401 string
    (VLLMDialect(), 400, b'{"error":{"message":"bad top_p","type":"BadRequestError","param":null,"code":400}}',
     BadRequestError, "BadRequestError"),
    (VLLMDialect(), 404, b'{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError",'
     b'"param":null,"code":404}', NotFoundError, "NotFoundError"),
    (VLLMDialect(), 401, b'{"error":"Unauthorized"}', AuthenticationError, ""),
    # llama.cpp nested with int code
    (LlamaCppDialect(), 401, b'{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}',
     AuthenticationError, "authentication_error"),
    # issue 19: loading is its own EngineUnavailableError, waited on without using up max_retries
    (LlamaCppDialect(), 503, b'{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}',
     ModelLoadingError, "unavailable_error"),
    (LlamaCppDialect(), 500, b'{"error":{"code":500,"message":"tools param requires --jinja flag","type":"server_error"}}',
     InternalServerError, "server_error"),
]


@pytest.mark.parametrize(("dialect", "status", "body", "cls", "etype"), CASES)
def test_error_shapes(dialect: Any, status: int, body: bytes, cls: type, etype: str) -> None:
    err = dialect.parse_error(status, body)
    assert type(err) is cls
    assert err.status_code == status
    assert (err.error_type or "") == etype
    assert err.engine == dialect.engine
    assert err.message  # never empty, even for an empty body


CONTEXT = [
    (VLLMDialect(), 400, {"error": {"message": "This model's maximum context length is 1024 tokens. However, your "
                          "prompt contains at least 1025 input tokens, which exceeds this limit even without any "
                          "output tokens. Please reduce the length of the input prompt. (parameter=input_tokens, "
                          "value=1025)", "type": "BadRequestError", "param": "input_tokens", "code": 400}}, 1025, 1024),
    (TGIDialect(), 422, {"error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
                         "Given: 4000 `inputs` tokens and 200 `max_new_tokens`", "error_type": "validation"}, 4000, 4096),
    (TGIDialect(), 422, {"error": "Input validation error: `inputs` must have less than 1024 tokens. Given: 2000",
                         "error_type": "validation"}, 2000, 1024),
    (VLLMDialect(), 400, {"error": {"message": "This model's maximum context length is 1024 tokens. However, you "
                          "requested 2010 tokens (2000 in the messages, 10 in the completion).", "type": "BadRequestError",
                          "code": 400}}, 2000, 1024),
    (VLLMDialect(), 400, {"error": {"message": "'max_tokens' or 'max_completion_tokens' is too large: 100. This model's "
                          "maximum context length is 1024 tokens and your request has 1000 input tokens (100 > 1024 - "
                          "1000).", "type": "BadRequestError", "code": 400}}, 1000, 1024),
    (VLLMDialect(), 400, {"error": {"message": "The decoder prompt (length 1500) is longer than the maximum model "
                          "length of 1024. Make sure that `max_model_len` is no smaller than the number of text tokens.",
                          "type": "BadRequestError", "code": 400}}, 1500, 1024),
    (LlamaCppDialect(), 400, {"error": {"code": 400, "message": "the request exceeds the available context size, try "
                              "increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 1500, "n_ctx": 1024}},
     1500, 1024),
]


@pytest.mark.parametrize(("dialect", "status", "body", "prompt", "limit"), CONTEXT)
def test_context_window_exceeded(dialect: Any, status: int, body: Any, prompt: int, limit: int) -> None:
    err = dialect.parse_error(status, json.dumps(body).encode())
    assert isinstance(err, ContextWindowExceededError)
    assert isinstance(err, BadRequestError)
    assert (err.prompt_tokens, err.context_limit) == (prompt, limit)


def test_other_400s_are_not_context_errors() -> None:
    err = VLLMDialect().parse_error(400, b'{"error":{"message":"top_p must be in (0, 1]","type":"x","code":400}}')
    assert type(err) is BadRequestError


def test_errors_pickle_with_their_fields() -> None:
    err = LlamaCppDialect().parse_error(400, json.dumps(CONTEXT[-1][2]).encode())
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ContextWindowExceededError
    assert (back.prompt_tokens, back.context_limit, back.status_code) == (1500, 1024, 400)
    assert str(back) == str(err)


@respx.mock
def test_status_errors_surface_through_the_client() -> None:
    respx.post("http://tgi.test/v1/chat/completions").mock(
        return_value=httpx.Response(422, text="Failed to deserialize the JSON body", headers={"content-type": "text/plain"})
    )
    with pytest.raises(BadRequestError, match="deserialize") as info:
        TGIClient("http://tgi.test").chat("hi")
    assert info.value.status_code == 422


@respx.mock
def test_api_key_is_sent_and_never_shown() -> None:
    route = respx.post("http://llama.test/v1/chat/completions").mock(
        return_value=httpx.Response(401, json={"error": {"code": 401, "message": "Invalid API Key",
                                                          "type": "authentication_error"}})
    )
    client = LlamaCppClient("http://llama.test", api_key="sk-very-secret")
    with pytest.raises(AuthenticationError) as info:
        client.chat("hi")
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-very-secret"
    for text in (repr(client), str(client), str(info.value), repr(info.value), repr(client.api_key),
                 repr(client.sync_transport), repr(vars(info.value))):
        assert "sk-very-secret" not in text


def test_env_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_BASE_URL", "http://from-env:8000/")
    monkeypatch.setenv("VLLM_API_KEY", "k")
    c = VLLMClient()
    assert c.base_url == "http://from-env:8000"
    assert c.api_key is not None and c.api_key.get_secret_value() == "k"
    monkeypatch.delenv("VLLM_BASE_URL")
    with pytest.raises(ValueError, match="VLLM_BASE_URL"):
        VLLMClient()


def test_credentials_in_the_url_are_not_shown() -> None:
    client = VLLMClient("http://user:pa55word@vllm.test:8000/base")
    assert "pa55word" not in repr(client) and "pa55word" not in repr(client.sync_transport)
    assert "vllm.test:8000/base" in repr(client)
