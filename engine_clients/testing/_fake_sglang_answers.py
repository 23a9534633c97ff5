"""The fake SGLang server's scripted answers (see ``fake_sglang.py``): pure functions from a request body to
SGLang's answer shapes, each with the ``sglang==0.5.23`` source file it copies.

The scripted model answers "Hello world." (three tokens), thinks "The user says hello." first when the
server is built with ``thinking=True``, calls a tool when ``tools`` are offered (unless ``tool_choice`` is
``"none"``, or ``"auto"`` with a tool result as the last message: then it answers) and fills a
``json_schema`` ``response_format`` with placeholder values. ``regex``/``ebnf`` are accepted and not
enforced. Triggers in the prompt (or last user message): ``!error`` (an error inside
the stream, or a 400), ``!abort`` (a scheduler abort with status 500), ``!hold`` (the stream stops after
its first event until the client goes away).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

MODEL_PATH = "scripted/sglang-tiny"
VERSION = "0.5.23"
CONTEXT_LENGTH = 4096
PIECES = ("Hello", " world", ".")
PIECE_IDS = (9707, 1879, 13)
EOS_ID = 151645
THOUGHT = ("The", " user", " says", " hello", ".")
EMBED_DIM = 8
CREATED = 1767225600


def words(text: str) -> list[str]:
    return text.split()


def token_ids(text: str) -> list[int]:
    """A deterministic id per whitespace-separated word (the fake's tokenizer)."""
    return [1000 + zlib.crc32(w.encode()) % 30000 for w in words(text)]


def context_error(n: int) -> str:
    # tokenizer_manager.py _validate_one_request
    return f"The input ({n} tokens) is longer than the model's context length ({CONTEXT_LENGTH} tokens)."


def output(max_new: int | None, ignore_eos: bool) -> tuple[list[str], list[int], dict[str, Any]]:
    """The pieces, their ids and the finish-reason object (schedule_batch.py ``FINISH_*.to_json``)."""
    limit = 128 if max_new is None else max_new  # SamplingParams.max_new_tokens default (sampling_params.py)
    n = limit if ignore_eos else min(limit, len(PIECES))
    pieces = [PIECES[i % len(PIECES)] for i in range(n)]
    ids = [PIECE_IDS[i % len(PIECES)] for i in range(n)]
    if not ignore_eos and limit > len(PIECES):
        return pieces, ids, {"type": "stop", "matched": EOS_ID}
    return pieces, ids, {"type": "length", "length": n}


def meta_info(rid: str, prompt: int, done: int, finish: dict[str, Any] | None, cached: int) -> dict[str, Any]:
    """tokenizer_manager.py ``_handle_batch_output``: ids, counts; ``e2e_latency`` on the final event."""
    meta: dict[str, Any] = {
        "id": rid,
        "finish_reason": finish,
        "prompt_tokens": prompt,
        "weight_version": "default",
        "total_retractions": 0,
        "reasoning_tokens": 0,
        "completion_tokens": done,
        "cached_tokens": cached,
    }
    if finish is not None:
        meta.update({"e2e_latency": 0.0125, "first_token_latency": 0.004, "decode_throughput": 240.0})
    return meta


def generate_events(body: dict[str, Any], rid: str, incremental: bool, cached: int) -> list[dict[str, Any]]:
    """``/generate``: one event per token, each with the whole text and ids so far, unless ``incremental``
    (``--incremental-streaming-output``: the new part only). A non-streamed answer is the last event."""
    sp = body.get("sampling_params") or {}
    pieces, ids, finish = output(sp.get("max_new_tokens"), bool(sp.get("ignore_eos")))
    prompt = len(token_ids(str(body.get("text") or "")))
    events, text = [], ""
    for i, piece in enumerate(pieces):
        text += piece
        last = i == len(pieces) - 1
        event: dict[str, Any] = {
            "text": piece if incremental else text,
            "output_ids": ids[i : i + 1] if incremental else ids[: i + 1],
            "meta_info": meta_info(rid, prompt, i + 1, finish if last else None, cached),
        }
        if body.get("return_logprob"):
            start = i if incremental else 0
            event["meta_info"]["output_token_logprobs"] = [
                [-0.25, ids[j], pieces[j] if body.get("return_text_in_logprobs") else None]
                for j in range(start, i + 1)
            ]
        events.append(event)
    if not events:  # max_new_tokens 0
        events.append({"text": "", "output_ids": [], "meta_info": meta_info(rid, prompt, 0, finish, cached)})
    return events


def fill(schema: Any) -> Any:
    """A placeholder value of a JSON schema (what the fake 'generates' under json_schema)."""
    if not isinstance(schema, dict):
        return "x"
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: fill(v) for k, v in props.items()}
    if kind == "array":
        return [fill(schema.get("items"))]
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(str(kind), "Paris")


def last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def has_image(messages: list[Any]) -> bool:
    parts = [
        p
        for m in messages
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for p in m["content"]
    ]
    return any(isinstance(p, dict) and p.get("type") == "image_url" for p in parts)


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def chat_plan(body: dict[str, Any], thinking: bool) -> dict[str, Any]:
    """What the scripted model answers to a chat request: thought, content pieces, tool call, finish."""
    kwargs = body.get("chat_template_kwargs") or {}
    thinks = thinking and kwargs.get("enable_thinking", True) is not False
    tools, choice = body.get("tools") or [], body.get("tool_choice", "auto")  # protocol.py: "auto" default
    messages = body.get("messages") or []
    # The scripted model (not an SGLang rule): free to choose, it answers a tool result in text, so that an
    # agent loop (LangChain's, LlamaIndex's FunctionAgent) ends after one call.
    answers_result = choice == "auto" and bool(messages) and _role(messages[-1]) == "tool"
    call = None
    if tools and choice != "none" and not answers_result:
        named = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        fn = next((t["function"] for t in tools if t["function"]["name"] == named), tools[0]["function"])
        call = {"name": fn["name"], "arguments": json.dumps(fill(fn.get("parameters") or {}))}
    fmt = body.get("response_format") or {}
    content: list[str] = list(PIECES)
    if fmt.get("type") == "json_schema":
        content = [json.dumps(fill((fmt.get("json_schema") or {}).get("schema") or {}))]
    elif fmt.get("type") == "json_object":
        content = ["{}"]
    max_new = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "tool_calls" if call else "stop"
    if call is None and max_new is not None and max_new < len(content):
        content, finish = content[:max_new], "length"
    return {
        "thought": list(THOUGHT) if thinks else [],
        "content": [] if call else content,
        "call": call,
        "finish": finish,
    }


def chat_usage(prompt: int, plan: dict[str, Any]) -> dict[str, Any]:
    """protocol.py ``UsageInfo``: ``reasoning_tokens`` at the top level and, when there are some, in
    ``completion_tokens_details``; ``prompt_tokens_details`` only with ``--enable-cache-report``."""
    reasoning = len(plan["thought"])
    completion = reasoning + len(plan["content"]) + (5 if plan["call"] else 0)
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
        "reasoning_tokens": reasoning,
        "completion_tokens_details": {"reasoning_tokens": reasoning} if reasoning else None,
    }


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    """serving_embedding.py ``_build_embedding_response``: ``model`` is the model path."""
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data, used = [], 0
    for i, text in enumerate(texts):
        ids = token_ids(str(text))
        used += len(ids)
        vec = [0.0] * EMBED_DIM
        for t in ids:
            vec[t % EMBED_DIM] += 1.0
        norm = sum(x * x for x in vec) ** 0.5 or 1.0
        data.append({"embedding": [x / norm for x in vec], "index": i, "object": "embedding"})
    usage = {
        "prompt_tokens": used,
        "total_tokens": used,
        "completion_tokens": 0,
        "prompt_tokens_details": None,
        "reasoning_tokens": 0,
        "completion_tokens_details": None,
    }
    return {"data": data, "model": MODEL_PATH, "object": "list", "usage": usage}


def rerank(body: dict[str, Any]) -> list[dict[str, Any]]:
    """serving_rerank.py ``_build_rerank_response``: a bare list sorted by score (``heapq.nlargest`` with
    ``top_n``), ``document`` only when ``return_documents`` (default true)."""
    query = {w.lower().strip(".,?!") for w in words(str(body["query"]))}
    out = []
    for i, doc in enumerate(body["documents"]):
        ws = [w.lower().strip(".,?!") for w in words(str(doc))]
        item: dict[str, Any] = {"score": sum(w in query for w in ws) / (len(ws) or 1), "index": i}
        if body.get("return_documents", True):
            item["document"] = doc
        item["meta_info"] = {"id": f"rerank-{i}", "prompt_tokens": len(ws) + len(query), "e2e_latency": 0.002}
        out.append(item)
    out.sort(key=lambda r: r["score"], reverse=True)  # stable: ties keep document order
    top = body.get("top_n")
    return out[:top] if isinstance(top, int) else out


def model_info(thinking: bool, reasoning_parser: str | None, vision: bool = False) -> dict[str, Any]:
    """http_server.py ``model_info``."""
    return {
        "model_path": MODEL_PATH,
        "served_model_name": MODEL_PATH,
        "tokenizer_path": MODEL_PATH,
        "is_generation": True,
        "preferred_sampling_params": None,
        "weight_version": "default",
        "load_format": "auto",
        "reasoning_parser": reasoning_parser,
        "tool_call_parser": "qwen25",
        "disaggregation_mode": "null",
        "has_image_understanding": vision,
        "has_audio_understanding": False,
        "model_type": "qwen3" if thinking else "qwen2",
        "architectures": ["Qwen3ForCausalLM" if thinking else "Qwen2ForCausalLM"],
    }


def server_info(incremental: bool, reasoning_parser: str | None) -> dict[str, Any]:
    """http_server.py ``server_info``: the resolved server args, scheduler info, ``version``."""
    return {
        "model_path": MODEL_PATH,
        "served_model_name": MODEL_PATH,
        "context_length": CONTEXT_LENGTH,
        "reasoning_parser": reasoning_parser,
        "tool_call_parser": "qwen25",
        "grammar_backend": "xgrammar",
        "incremental_streaming_output": incremental,
        "launch_command": f"python -m sglang.launch_server --model-path {MODEL_PATH}",
        "max_total_num_tokens": 65536,
        "max_req_input_len": CONTEXT_LENGTH - 1,
        "internal_states": [{}],
        "version": VERSION,
        "frontend": "python",
    }


def models(adapters: dict[str, str] | None = None) -> dict[str, Any]:
    """http_server.py ``available_models``: the base model, then each loaded LoRA adapter (``id`` its name,
    ``root`` its path, ``parent`` the base model); protocol.py ``ModelCard`` (``owned_by``: sglang)."""

    def card(name: str, root: str, parent: str | None, max_len: int | None) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": CREATED,
            "owned_by": "sglang",
            "root": root,
            "parent": parent,
            "max_model_len": max_len,
        }

    cards = [card(MODEL_PATH, MODEL_PATH, None, CONTEXT_LENGTH)]
    cards += [card(name, path, MODEL_PATH, None) for name, path in (adapters or {}).items()]
    return {"object": "list", "data": cards}


def lora_update(adapters: dict[str, str], body: Any, *, enabled: bool, load: bool) -> tuple[int, Any]:
    """``/load_lora_adapter`` (``load``) or ``/unload_lora_adapter``: ``adapters`` (name -> path) updated, and
    the status and ``LoRAUpdateOutput`` the server answers (tokenizer_control_mixin.py: a refusal is 400)."""
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("lora_name"), str)
        or (load and "lora_path" not in body)
    ):
        field = "lora_path" if load else "lora_name"  # FastAPI's validation answer for a missing field
        return 422, {"detail": [{"type": "missing", "loc": ["body", field], "msg": "Field required"}]}
    name, error = body["lora_name"], None
    if not enabled:
        error = (
            "LoRA is not enabled. Please set `--enable-lora` to enable LoRA."  # tokenizer_control_mixin.py
        )
    elif load and name in adapters:
        error = f"Failed to load LoRA adapter {name} because it is already loaded"  # lora_manager.py
    elif not load and name not in adapters:
        error = f"LoRA with name {name} does not exist. Loaded LoRAs: {adapters.keys()}"  # lora_registry.py
    elif load:
        adapters[name] = str(body["lora_path"])
    else:
        del adapters[name]
    return (400 if error else 200), {
        "success": error is None,
        "error_message": error,
        "loaded_adapters": dict(adapters),
    }
