"""Images and audio in chat messages, normalized once before a dialect encodes them.

Message content parts come in as OpenAI parts (``image_url``, ``input_audio``) or as the engine-neutral
``{"type": "image" | "audio", "url" | "path" | "data" | "base64", "mime_type", "format"}`` form the framework
wrappers produce. They leave as OpenAI parts: ``{"type": "image_url", "image_url": {"url": <data: or
http(s) URL>}}`` and ``{"type": "input_audio", "input_audio": {"data": <base64>, "format": "wav"}}``. Local
files (a path or a ``file://`` URL) are read and base64-encoded here, on the client; every inline item is
held to ``max_bytes`` (decoded size). Remote image URLs are left for the server to fetch.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import os
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import TypeAlias
from urllib.parse import unquote
from urllib.parse import urlparse

from .errors import InvalidRequestError
from .errors import MediaTooLargeError

__all__ = ["DEFAULT_MAX_MEDIA_BYTES", "ImageInput", "media_kind", "normalize_content", "normalize_images"]

DEFAULT_MAX_MEDIA_BYTES = 20 * 1024 * 1024
"""Largest image or audio item (decoded bytes) a client sends inline unless told otherwise."""

_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3"}


ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | Mapping[str, Any]"
"""One image for the native text routes (``generate``): a data URL, an http(s) URL, a local path or
``file://`` URL, raw bytes, or a chat image part (``image_url`` or the neutral ``{"type": "image", ...}``)."""

_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def normalize_images(images: Sequence[ImageInput] | None, max_bytes: int) -> tuple[str, ...]:
    """Images for ``generate`` as ``data:`` or http(s) URLs (local files and bytes read and base64-encoded
    here, each at most ``max_bytes``), by the same rules as chat image parts. Audio is refused."""
    if images is None:
        return ()
    if isinstance(images, str | bytes | bytearray | Mapping) or not isinstance(images, Sequence):
        raise InvalidRequestError("images must be a list (of URLs, paths, bytes or image parts)")
    out = []
    for i, item in enumerate(images):
        where = f"images[{i}]"
        if isinstance(item, bytes | bytearray):
            mime = next((m for magic, m in _MAGIC if item.startswith(magic)), None)
            if mime is None and item[:4] == b"RIFF" and item[8:12] == b"WEBP":
                mime = "image/webp"
            out.append(_data_url(_b64(item, max_bytes, where, "image"), mime or "image/png"))
        elif isinstance(item, str | os.PathLike):
            if not str(item):
                raise InvalidRequestError(f"{where}: an empty image")
            out.append(_image_url(str(item), None, max_bytes, where, is_path=not isinstance(item, str)))
        elif isinstance(item, Mapping):
            if item.get("type") in ("audio", "input_audio"):
                raise InvalidRequestError(
                    f"{where}: audio is not taken on the native text routes (generate); use chat"
                )
            part = _part(item, max_bytes, where)
            if media_kind(part) != "image":
                raise InvalidRequestError(f"{where}: not an image part (type {item.get('type')!r})")
            out.append(part["image_url"]["url"])
        else:
            raise InvalidRequestError(f"{where}: an image must be a URL, a path, bytes or an image part")
    return tuple(out)


def media_kind(part: Mapping[str, Any]) -> str | None:
    """``"image"``/``"audio"`` for a normalized media part, None for text (and unknown parts)."""
    kind = part.get("type")
    return "image" if kind == "image_url" else "audio" if kind == "input_audio" else None


def normalize_content(content: Any, max_bytes: int, where: str) -> Any:
    """Content with its media parts in the canonical OpenAI form (strings and None pass through)."""
    if not isinstance(content, list):
        return content
    return [_part(p, max_bytes, f"{where}, part {i}") for i, p in enumerate(content)]


_RESPONSES_TEXT = frozenset({"input_text", "output_text"})


def _part(part: Any, max_bytes: int, where: str) -> Any:
    if not isinstance(part, Mapping):
        raise InvalidRequestError(f"{where}: a content part must be a dict, not {type(part).__name__}")
    kind = part.get("type")
    if kind == "image_url":
        spec = part.get("image_url")
        url = spec.get("url") if isinstance(spec, Mapping) else spec
        if not isinstance(url, str) or not url:
            raise InvalidRequestError(f"{where}: image_url without a url")
        image: dict[str, Any] = {"url": _image_url(url, None, max_bytes, where)}
        if isinstance(spec, Mapping) and spec.get("detail") is not None:
            image["detail"] = spec["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": _neutral_image(part, max_bytes, where)}}
    if kind == "input_audio":
        spec = part.get("input_audio")
        if not isinstance(spec, Mapping):
            raise InvalidRequestError(f"{where}: input_audio must be an object with data and format")
        return _audio({**spec, "type": "audio"}, max_bytes, where)
    if kind == "audio":
        return _audio(part, max_bytes, where)
    if kind in _RESPONSES_TEXT and isinstance(part.get("text"), str):
        # OpenAI Responses-style text (LangChain's output_text blocks): no engine takes these types
        # (llama-server: 400 "unsupported content[].type"; vLLM: "Input should be 'text'").
        return {"type": "text", "text": part["text"]}
    return dict(part)  # text and engine-specific parts (e.g. vLLM video_url) pass as given


def _neutral_image(part: Mapping[str, Any], max_bytes: int, where: str) -> str:
    mime = part.get("mime_type")
    mime = mime if isinstance(mime, str) and mime else None
    data = part.get("data", part.get("base64"))
    if data is not None:
        return _data_url(_b64(data, max_bytes, where, "image"), mime or "image/png")
    for key in ("path", "url"):
        value = part.get(key)
        if isinstance(value, str | os.PathLike) and str(value):
            return _image_url(str(value), mime, max_bytes, where, is_path=key == "path")
    raise InvalidRequestError(f"{where}: an image needs url, path, or data (base64)")


def _image_url(url: str, mime: str | None, max_bytes: int, where: str, *, is_path: bool = False) -> str:
    if not is_path:
        low = url[:8].lower()
        if low.startswith(("http://", "https://")):
            return url
        if low.startswith("data:"):
            head, sep, payload = url.partition(",")
            if not sep or ";base64" not in head:
                raise InvalidRequestError(f"{where}: a data URL image must be base64 (data:<mime>;base64,…)")
            _check(_decoded_size(payload), max_bytes, where, "image")
            return url
    raw = _read(url, max_bytes, where, "image")
    guessed = mime or mimetypes.guess_type(_local_path(url).name)[0] or "image/png"
    return _data_url(base64.b64encode(raw).decode("ascii"), guessed)


def _audio(part: Mapping[str, Any], max_bytes: int, where: str) -> dict[str, Any]:
    fmt = part.get("format")
    mime = part.get("mime_type")
    data = part.get("data", part.get("base64"))
    if data is not None:
        b64 = _b64(data, max_bytes, where, "audio")
    else:
        source = part.get("path") or part.get("url")
        if not isinstance(source, str | os.PathLike) or not str(source):
            raise InvalidRequestError(f"{where}: audio needs data (base64) or a local path")
        source = str(source)
        if source[:8].lower().startswith(("http://", "https://")):
            raise InvalidRequestError(
                f"{where}: audio by http(s) URL is not sent (the chat routes take inline audio only);"
                " download it and pass the bytes or a path"
            )
        if source.lower().startswith("data:"):
            head, _, payload = source.partition(",")
            mime = mime or head[5:].split(";")[0]
            b64 = _b64(payload, max_bytes, where, "audio")
        else:
            b64 = base64.b64encode(_read(source, max_bytes, where, "audio")).decode("ascii")
            fmt = fmt or _local_path(source).suffix.lstrip(".").lower() or None
    if not fmt and isinstance(mime, str):
        fmt = _AUDIO_FORMATS.get(mime.lower(), mime.split("/")[-1] if "/" in mime else None)
    if not isinstance(fmt, str) or not fmt:
        raise InvalidRequestError(f"{where}: audio needs a format (wav, mp3) or a mime_type")
    return {"type": "input_audio", "input_audio": {"data": b64, "format": fmt}}


def _b64(data: Any, max_bytes: int, where: str, kind: str) -> str:
    if isinstance(data, bytes | bytearray):
        _check(len(data), max_bytes, where, kind)
        return base64.b64encode(bytes(data)).decode("ascii")
    if not isinstance(data, str):
        raise InvalidRequestError(f"{where}: {kind} data must be bytes or a base64 string")
    text: str = data.partition(",")[2] if data[:5].lower() == "data:" else data
    if any(c.isspace() for c in text[:200]):  # line-wrapped base64
        text = "".join(text.split())
    _check(_decoded_size(text), max_bytes, where, kind)
    head = text[:4096]
    try:
        base64.b64decode(head.encode("ascii") + b"=" * (-len(head) % 4), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise InvalidRequestError(f"{where}: {kind} data is not valid base64") from None
    return text


def _data_url(b64: str, mime: str) -> str:
    return f"data:{mime};base64,{b64}"


def _decoded_size(payload: str) -> int:
    n = len(payload.rstrip("="))
    return n * 3 // 4


def _check(size: int, max_bytes: int, where: str, kind: str) -> None:
    if size > max_bytes:
        raise MediaTooLargeError(
            f"{where}: the {kind} is {size} bytes, over the limit of {max_bytes} bytes"
            " (raise the client's max_media_bytes, or send a smaller file)",
            size=size,
            limit=max_bytes,
        )


def _local_path(source: str) -> Path:
    if source[:7].lower() == "file://":
        return Path(unquote(urlparse(source).path))
    return Path(source).expanduser()


def _read(source: str, max_bytes: int, where: str, kind: str) -> bytes:
    path = _local_path(source)
    try:
        size = path.stat().st_size
        _check(size, max_bytes, where, kind)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidRequestError(
            f"{where}: cannot read the {kind} {source!r} ({exc.strerror or exc}); pass a readable local"
            " path, a file:// URL, an http(s) URL or base64 data"
        ) from None
    _check(len(data), max_bytes, where, kind)
    return data
