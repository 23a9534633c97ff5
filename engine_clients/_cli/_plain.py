"""Tables without rich (the ``[cli]`` extra): the same columns as plain text, one row a line.

Why rich is an extra: httpx imports its own command line (and so rich) whenever click and rich are both
installed, which costs ``import engine_clients`` about 70 ms in an environment with LlamaIndex (nltk brings
click). Without rich, ``doctor`` and ``loadtest`` print this and show no progress display."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["have_rich", "table"]


def have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``title``, then the rows as columns padded to their widest cell (a cell's newlines become "; ")."""
    cells = [[str(c).replace("\n", "; ") for c in r] for r in [list(headers), *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [title, *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)]
    lines.insert(2, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
