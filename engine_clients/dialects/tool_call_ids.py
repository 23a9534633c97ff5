"""Tool-call ids for templates that take only 9 letters or digits (Mistral's ``raise_exception("Tool call IDs
should be alphanumeric strings with length 9!")``): the ``tool_call_id_format="mistral9"`` step of
:func:`~engine_clients.dialects.history.fit_history`. A new id is 9 characters derived from a SHA-256 of the
original (deterministic, collision-free within the history)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol

from ..types import HistoryChange

__all__ = ["Item", "rename_tool_call_ids"]

_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Item(Protocol):
    """A message of the history being fitted, with its index in the caller's input."""

    msg: dict[str, Any]
    origin: int

    @property
    def role(self) -> Any: ...


def _fits_mistral(tool_call_id: Any) -> bool:
    return isinstance(tool_call_id, str) and _MISTRAL_ID.fullmatch(tool_call_id) is not None


def _mistral_id(original: str, attempt: int) -> str:
    digest = hashlib.sha256(f"{attempt}\x00{original}".encode()).digest()
    n = int.from_bytes(digest[:12], "big")
    chars = []
    for _ in range(9):
        n, r = divmod(n, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[r])
    return "".join(chars)


def rename_tool_call_ids(items: Sequence[Item], changes: list[HistoryChange]) -> dict[str, str]:
    """Give every tool-call id that is not 9 ASCII letters or digits such an id, in the assistant's
    ``tool_calls[].id`` and the tool result's ``tool_call_id`` alike (``items``' messages are changed in
    place, one ``renamed_tool_call_id`` change each); returns new id -> original id."""
    taken: set[str] = set()
    for it in items:
        for call in it.msg.get("tool_calls") or ():
            if isinstance(call, Mapping) and _fits_mistral(call.get("id")):
                taken.add(call["id"])
        if it.role == "tool" and _fits_mistral(it.msg.get("tool_call_id")):
            taken.add(it.msg["tool_call_id"])
    new_of: dict[str, str] = {}

    def rename(original: Any) -> str:
        key = "" if original is None else str(original)
        if key not in new_of:
            attempt = 0
            while (candidate := _mistral_id(key, attempt)) in taken:
                attempt += 1
            taken.add(candidate)
            new_of[key] = candidate
        return new_of[key]

    for it in items:
        renamed: list[str] = []
        calls = it.msg.get("tool_calls")
        if it.role == "assistant" and isinstance(calls, list | tuple) and calls:
            new_calls: list[Any] = []
            for call in calls:
                if isinstance(call, Mapping) and not _fits_mistral(call.get("id")):
                    new_id = rename(call.get("id"))
                    renamed.append(f"{call.get('id')!r} -> {new_id!r}")
                    call = {**call, "id": new_id}
                new_calls.append(call)
            if renamed:
                it.msg["tool_calls"] = new_calls
        if it.role == "tool" and "tool_call_id" in it.msg and not _fits_mistral(it.msg["tool_call_id"]):
            old = it.msg["tool_call_id"]
            it.msg["tool_call_id"] = rename(old)
            renamed.append(f"{old!r} -> {it.msg['tool_call_id']!r}")
        if renamed:
            changes.append(
                HistoryChange(
                    "renamed_tool_call_id",
                    it.origin,
                    f"{it.role} message {it.origin}: tool-call id(s) {', '.join(renamed)} (the template takes"
                    " 9 letters or digits)",
                )
            )
    return {new: old for old, new in new_of.items()}
