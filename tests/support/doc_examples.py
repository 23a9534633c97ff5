"""The ```python blocks of README.md and docs/**/*.md, for ``tests/docs/test_examples.py`` and for the tests
that run a block where its servers live.

A block preceded by ``<!-- docs-test: skip: REASON -->`` is skipped with that reason. One preceded by
``<!-- docs-test: runs-in: TEST_FILE as NAME -->`` needs servers or a framework that only that test file has
(a vLLM with runtime LoRA loading, a Ray cluster, Spark, Dask): that file runs it with :func:`example` and
:func:`substitute`, and ``test_examples.py`` checks that it does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(.+?)\s*-->")
RUNS_IN = re.compile(r"<!--\s*docs-test:\s*runs-in:\s*(\S+)\s+as\s+(\S+)\s*-->")
URL = re.compile(r"https?://[A-Za-z0-9.\-]+(?::\d+)?")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    code: str
    skip: str | None
    runs_in: str | None = None
    """The test file that runs this block (relative to the project root), with its ``name``."""
    name: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def collect(path: Path) -> list[Example]:
    """The ```python blocks of a markdown file, each with the marker comment just above it."""
    out: list[Example] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            skip, elsewhere = SKIP.search(above), RUNS_IN.search(above)
            out.append(
                Example(
                    path,
                    start,
                    "\n".join(lines[start:end]) + "\n",
                    skip.group(1) if skip else None,
                    elsewhere.group(1) if elsewhere else None,
                    elsewhere.group(2) if elsewhere else None,
                )
            )
            i = end
        i += 1
    return out


EXAMPLES = [e for path in DOCS for e in collect(path)]


def example(name: str) -> Example:
    """The block marked ``runs-in: ... as NAME``."""
    found = [e for e in EXAMPLES if e.name == name]
    assert len(found) == 1, f"{len(found)} blocks are marked 'as {name}'"
    return found[0]


def substitute(code: str, replacements: dict[str, str]) -> str:
    """``code`` with each key replaced by its value: the one visible change a test makes to a block (base
    URLs, and paths that exist only on the docs' servers). Every URL in the block must be replaced."""
    for old, new in replacements.items():
        assert old in code, f"{old!r} is not in the block"
        code = code.replace(old, new)
    left = [u for u in URL.findall(code) if "127.0.0.1" not in u and "localhost" not in u]
    assert not left, f"no server stands for {left}"
    return code
