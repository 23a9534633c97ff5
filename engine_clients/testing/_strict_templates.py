"""Strict chat templates for the scripted tiny models: the checks real strict templates make (issue 19).

Gemma, Mistral and Qwen3.5 chat templates refuse histories that agent frameworks build every day: several
system messages, a system message after the first turn, two user turns in a row, tool-call ids that are not
Mistral's 9 letters or digits. They ``raise_exception`` from Jinja; llama-server answers such a request with a
400 "Unable to generate parser for this template ...", vLLM with a 400 carrying the exception's text.

The templates here make those checks and otherwise render exactly the prompt format of the kit's
``tool_chat_template.jinja`` (ChatML; tools listed in the system turn; calls as ``<tool_call>`` JSON; tool
results in a user turn inside ``<tool_response>``; the generation prompt ends ``<|im_start|>assistant\\n``),
so the scripted models still answer `` Hello world.`` under greedy decoding:

* ``gemma_like`` (Gemma 2/3): a leading system message is folded into the first user turn; after it the
  roles must alternate user/assistant, starting with a user turn, else "Conversation roles must alternate
  user/assistant/user/assistant/..." (any other system message breaks the alternation too). Like Gemma 3,
  a content that is neither a string nor a list of parts (None) raises "Invalid content type"; list parts
  render their ``text`` (``text`` parts) or ``<start_of_image>``.
* ``qwen35_like`` (Qwen3.5): "System message must be at the beginning." for a system message at an index
  above 0 (so also for a second system message at index 1). Roles need not alternate. Content lists render
  each part's ``text``; a part without one raises "Unexpected item type in content.".
* ``mistral_like`` (Mistral): the alternation check, and every ``tool_calls[].id`` of an assistant message
  and every ``tool_call_id`` of a tool message must be 9 ASCII letters or digits, else "Tool call IDs should
  be alphanumeric strings with length 9!"; every content must be a string ("Message content must be a
  string."), None included.
* ``combined``: all of it at once (system-first with Qwen3.5's message, alternation, Mistral's ids, string
  content): the one strict vLLM server of the tests runs it.

What "alternate" means here is what ``engine_clients.dialects.history`` fits to: after the optional leading
system message, user turns and assistant turns alternate, starting with a user turn; an assistant turn is an
assistant message, then any number of "tool results, then another assistant message", optionally ending with
tool results (so a user message right after tool results is fine). Real Mistral v3 templates are stricter
there (they skip tool calls and results when checking, so ``user, assistant(tool_calls), tool, user`` fails);
the fitting does not cover that and these templates do not check it.

>>> from engine_clients.testing import start_llama_strict_server, write_strict_templates
>>> paths = write_strict_templates()          # {"gemma_like": Path(...), ...}, in the cache directory
>>> with start_llama_strict_server("mistral_like") as server:   # --chat-template-file <its file>
...     ...
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from .launcher import EngineServer

__all__ = [
    "STRICT_ERRORS",
    "STRICT_TEMPLATES",
    "start_llama_strict_server",
    "start_vllm_strict_server",
    "strict_template",
    "strict_template_path",
    "write_strict_templates",
]

# The exception texts, as the real templates word them.
ALTERNATE_ERROR = "Conversation roles must alternate user/assistant/user/assistant/..."
SYSTEM_ERROR = "System message must be at the beginning."
TOOL_CALL_ID_ERROR = "Tool call IDs should be alphanumeric strings with length 9!"
GEMMA_CONTENT_ERROR = "Invalid content type"
QWEN_CONTENT_ERROR = "Unexpected item type in content."
STRING_CONTENT_ERROR = "Message content must be a string."

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# ---- the pieces ------------------------------------------------------------------------------------

# content -> text, per template family (a macro named render_content)
_CONTENT_MACROS = {
    "gemma": """{%- macro render_content(content) %}
{%- if content is string %}
{{- content }}
{%- elif content is iterable and content is not mapping and content is not none %}
{%- for item in content %}
{%- if item['type'] == 'image' or item['type'] == 'image_url' %}
{{- '<start_of_image>' }}
{%- elif item['type'] == 'text' %}
{{- item['text'] }}
{%- endif %}
{%- endfor %}
{%- else %}
{{- raise_exception('@GEMMA_CONTENT_ERROR@') }}
{%- endif %}
{%- endmacro %}
""",
    "qwen": """{%- macro render_content(content) %}
{%- if content is string %}
{{- content }}
{%- elif content is none or content is not defined %}
{{- '' }}
{%- else %}
{%- for item in content %}
{%- if item['text'] is defined and item['text'] is string %}
{{- item['text'] }}
{%- else %}
{{- raise_exception('@QWEN_CONTENT_ERROR@') }}
{%- endif %}
{%- endfor %}
{%- endif %}
{%- endmacro %}
""",
    "string": """{%- macro render_content(content) %}
{%- if content is string %}
{{- content }}
{%- else %}
{{- raise_exception('@STRING_CONTENT_ERROR@') }}
{%- endif %}
{%- endmacro %}
""",
}

_SYSTEM_CHECK = """{%- for m in messages %}
{%- if m.role == 'system' and not loop.first %}
{{- raise_exception('@SYSTEM_ERROR@') }}
{%- endif %}
{%- endfor %}
"""

# Turns alternate after the optional leading system message (see the module documentation).
_ALTERNATE_CHECK = """{%- set alt = namespace(prev='none') %}
{%- for m in messages %}
{%- if loop.first and m.role == 'system' %}
{%- elif m.role == 'user' %}
{%- if alt.prev == 'user' %}
{{- raise_exception('@ALTERNATE_ERROR@') }}
{%- endif %}
{%- set alt.prev = 'user' %}
{%- elif m.role == 'assistant' %}
{%- if alt.prev == 'none' or alt.prev == 'assistant' %}
{{- raise_exception('@ALTERNATE_ERROR@') }}
{%- endif %}
{%- set alt.prev = 'assistant' %}
{%- elif m.role == 'tool' %}
{%- set alt.prev = 'tool' %}
{%- else %}
{{- raise_exception('@ALTERNATE_ERROR@') }}
{%- endif %}
{%- endfor %}
"""

# Whether an id is 9 ASCII letters or digits: llama.cpp's Jinja cannot iterate over a string, so every letter
# and digit is replaced away and nothing may be left (@STRIP_ALNUM@: a chain of replace filters).
_ID_CHECK = """{%- macro check_id(id) %}
{%- if id is not string or id | length != 9 or (id@STRIP_ALNUM@) | length != 0 %}
{{- raise_exception('@TOOL_CALL_ID_ERROR@') }}
{%- endif %}
{%- endmacro %}
{%- for m in messages %}
{%- if m.role == 'assistant' and m.tool_calls %}
{%- for tc in m.tool_calls %}
{{- check_id(tc.id) }}
{%- endfor %}
{%- elif m.role == 'tool' %}
{{- check_id(m.tool_call_id) }}
{%- endif %}
{%- endfor %}
"""

# The kit's ChatML rendering (tool_chat_template.jinja) with content through render_content; ``fold``: a
# leading system message goes into the first user turn (Gemma) instead of a system turn (unless tools are
# offered: then it opens the tools' system turn, as in the kit's template).
_RENDER = """{%- set ns = namespace(skip_system=false, fold='') %}
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages and messages[0].role == 'system' %}
{{- render_content(messages[0].content) + '\\n\\n' }}
{%- set ns.skip_system = true %}
{%- endif %}
{{- 'You may call one or more functions. Their signatures are inside <tools></tools>:\\n<tools>\\n' }}
{%- for tool in tools %}
{{- tool | tojson }}
{{- '\\n' }}
{%- endfor %}
{{- '</tools>\\nTo call a function, answer with <tool_call>{"name": <function-name>, ' }}
{{- '"arguments": <args-json-object>}</tool_call><|im_end|>\\n' }}
{%- elif @FOLD@ and messages and messages[0].role == 'system' %}
{%- set ns.skip_system = true %}
{%- set ns.fold = render_content(messages[0].content) + '\\n\\n' %}
{%- endif %}
{%- for m in messages %}
{%- if loop.first and ns.skip_system %}
{%- elif m.role == 'tool' %}
{{- '<|im_start|>user\\n<tool_response>\\n' }}
{{- render_content(m.content) }}
{{- '\\n</tool_response><|im_end|>\\n' }}
{%- elif m.role == 'assistant' and m.tool_calls %}
{{- '<|im_start|>assistant\\n' }}
{{- render_content(m.content) }}
{%- for tc in m.tool_calls %}
{%- set call = tc.function if tc.function is defined else tc %}
{{- '\\n<tool_call>\\n{"name": "' + call.name + '", "arguments": ' }}
{%- if call.arguments is string %}
{{- call.arguments }}
{%- else %}
{{- call.arguments | tojson }}
{%- endif %}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- else %}
{{- '<|im_start|>' + m.role + '\\n' }}
{%- if m.role == 'user' and ns.fold %}
{{- ns.fold }}
{%- set ns.fold = '' %}
{%- endif %}
{{- render_content(m.content) }}
{{- '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""


_PLACEHOLDERS = {
    "ALTERNATE_ERROR": ALTERNATE_ERROR,
    "SYSTEM_ERROR": SYSTEM_ERROR,
    "TOOL_CALL_ID_ERROR": TOOL_CALL_ID_ERROR,
    "GEMMA_CONTENT_ERROR": GEMMA_CONTENT_ERROR,
    "QWEN_CONTENT_ERROR": QWEN_CONTENT_ERROR,
    "STRING_CONTENT_ERROR": STRING_CONTENT_ERROR,
    "STRIP_ALNUM": "".join(f"|replace('{c}', '')" for c in _ALNUM),
}


def _template(title: str, content: str, *, fold: bool, system: bool, alternate: bool, ids: bool) -> str:
    parts = [f"{{#- {title} (engine_clients.testing._strict_templates) -#}}\n", _CONTENT_MACROS[content]]
    if system:
        parts.append(_SYSTEM_CHECK)
    if alternate:
        parts.append(_ALTERNATE_CHECK)
    if ids:
        parts.append(_ID_CHECK)
    parts.append(_RENDER.replace("@FOLD@", "true" if fold else "false"))
    text = "".join(parts)
    for key, value in _PLACEHOLDERS.items():
        text = text.replace(f"@{key}@", value)
    return text


STRICT_TEMPLATES: dict[str, str] = {
    "gemma_like": _template(
        "Gemma-like: alternating roles, system folded into the first user turn",
        "gemma",
        fold=True,
        system=False,
        alternate=True,
        ids=False,
    ),
    "qwen35_like": _template(
        "Qwen3.5-like: one system message, at the beginning",
        "qwen",
        fold=False,
        system=True,
        alternate=False,
        ids=False,
    ),
    "mistral_like": _template(
        "Mistral-like: alternating roles, 9-character alphanumeric tool-call ids, string content",
        "string",
        fold=False,
        system=False,
        alternate=True,
        ids=True,
    ),
    "combined": _template(
        "Combined: system first, alternating roles, Mistral tool-call ids, string content",
        "string",
        fold=False,
        system=True,
        alternate=True,
        ids=True,
    ),
}
"""Each strict template's Jinja source, by name (see the module documentation)."""

STRICT_ERRORS: dict[str, tuple[str, ...]] = {
    "gemma_like": (ALTERNATE_ERROR, GEMMA_CONTENT_ERROR),
    "qwen35_like": (SYSTEM_ERROR, QWEN_CONTENT_ERROR),
    "mistral_like": (ALTERNATE_ERROR, TOOL_CALL_ID_ERROR, STRING_CONTENT_ERROR),
    "combined": (SYSTEM_ERROR, ALTERNATE_ERROR, TOOL_CALL_ID_ERROR, STRING_CONTENT_ERROR),
}
"""The exception texts each template may raise."""


def strict_template(name: str) -> str:
    """The Jinja source of the strict template ``name`` (a key of :data:`STRICT_TEMPLATES`)."""
    try:
        return STRICT_TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown strict template {name!r}: one of {', '.join(STRICT_TEMPLATES)}") from None


def strict_template_path(name: str, directory: Path | str | None = None) -> Path:
    """The strict template ``name`` written to a file (``strict-<name>-<hash>.jinja`` in ``directory``,
    default ``<cache_root>/templates``; written once, content-addressed, so concurrent runs agree)."""
    text = strict_template(name)
    if directory is None:
        from .provision import cache_root

        directory = cache_root() / "templates"
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = folder / f"strict-{name}-{digest}.jinja"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path


def write_strict_templates(directory: Path | str | None = None) -> dict[str, Path]:
    """Every strict template written to a file (see :func:`strict_template_path`): name -> path."""
    return {name: strict_template_path(name, directory) for name in STRICT_TEMPLATES}


def start_llama_strict_server(name: str, *, extra_args: Sequence[str] = (), **kwargs: Any) -> EngineServer:
    """llama-server with the scripted GGUF and the strict template ``name`` (``--jinja
    --chat-template-file F``); ``kwargs`` as for :func:`~engine_clients.testing.start_llama_server`."""
    from .launcher import start_llama_server

    template = strict_template_path(name)
    return start_llama_server(extra_args=["--chat-template-file", str(template), *extra_args], **kwargs)


def start_vllm_strict_server(
    name: str = "combined", *, extra_args: Sequence[str] = (), **kwargs: Any
) -> EngineServer:
    """vLLM with the scripted HF model and the strict template ``name`` (``--chat-template F``; default the
    ``combined`` one); ``kwargs`` as for :func:`~engine_clients.testing.start_vllm_server`."""
    from .launcher import start_vllm_server

    template = strict_template_path(name)
    return start_vllm_server(extra_args=["--chat-template", str(template), *extra_args], **kwargs)
