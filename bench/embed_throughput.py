"""Embedding throughput (texts/s) on one real llama-server ``--embedding`` (the scripted bag-of-words GGUF),
in one run: engine_clients' ``LlamaCppClient.embed``, langchain-selfhosted's ``LlamaCppEmbeddings``,
langchain-openai's ``OpenAIEmbeddings(base_url=..., check_embedding_ctx_length=False)`` and a raw httpx loop.

The scripted server's own time swings widely on a busy machine, so the best round is the figure to compare
(the client's overhead), the median says how noisy the run was. Every contender sends the same texts in
batches of ``BATCH`` per request, one request at a time, and every answer is checked against the raw loop's
vectors. ``.bench-venv/bin/python -m bench.embed_throughput``
(bench/run.sh builds that venv); writes ``bench/results/embeddings.json``.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from engine_clients import LlamaCppClient
from engine_clients.testing import EMBED_WORDS
from engine_clients.testing import start_llama_embed_server

N_TEXTS = 64
BATCH = 32
ROUNDS = 7
OUT = Path(__file__).resolve().parent / "results" / "embeddings.json"


def _texts() -> list[str]:
    rng = random.Random(13)
    words = sorted(EMBED_WORDS)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(N_TEXTS)]


def _raw(base_url: str) -> Callable[[list[str]], list[list[float]]]:
    http = httpx.Client(base_url=base_url, timeout=60)

    def run(texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for i in range(0, len(texts), BATCH):
            body = http.post(
                "/v1/embeddings", json={"input": texts[i : i + BATCH], "encoding_format": "float"}
            )
            body.raise_for_status()
            out.extend(item["embedding"] for item in sorted(body.json()["data"], key=lambda d: d["index"]))
        return out

    return run


def main() -> int:
    from langchain_openai import OpenAIEmbeddings
    from langchain_selfhosted import LlamaCppEmbeddings

    texts = _texts()
    with start_llama_embed_server() as server:
        client = LlamaCppClient(server.base_url)
        contenders: dict[str, Callable[[list[str]], list[list[float]]]] = {
            "raw httpx loop": _raw(server.base_url),
            "engine_clients LlamaCppClient.embed": lambda t: client.embed(t, batch_size=BATCH).vectors,
            "langchain-selfhosted LlamaCppEmbeddings": LlamaCppEmbeddings(
                base_url=server.base_url, batch_size=BATCH
            ).embed_documents,
            "langchain-openai OpenAIEmbeddings": OpenAIEmbeddings(
                base_url=f"{server.base_url}/v1",
                api_key="unused",  # type: ignore[arg-type]
                model=server.model,
                check_embedding_ctx_length=False,
                chunk_size=BATCH,
            ).embed_documents,
        }
        reference = contenders["raw httpx loop"](texts)
        for name, run in contenders.items():  # same vectors from everyone (and a warm-up)
            got = run(texts[:BATCH])
            assert all(
                abs(a - b) < 1e-5
                for v, w in zip(got, reference, strict=False)
                for a, b in zip(v, w, strict=True)
            ), name
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(ROUNDS):  # interleaved, so a busy machine slows every contender alike
            for name, run in contenders.items():
                t0 = time.perf_counter()
                vectors = run(texts)
                rates[name].append(len(texts) / (time.perf_counter() - t0))
                assert len(vectors) == len(texts), name
        rows = []
        for name, r in rates.items():
            rows.append(
                {
                    "client": name,
                    "texts_per_s_best": max(r),
                    "texts_per_s_median": statistics.median(r),
                    "rounds": r,
                }
            )
            print(
                f"{name:42s} best {max(r):8.1f}  median {statistics.median(r):8.1f} texts/s ({ROUNDS} rounds)"
            )
    OUT.write_text(
        json.dumps(
            {
                "scenario": "embed throughput",
                "n_texts": N_TEXTS,
                "batch": BATCH,
                "server": "llama-server --embedding (scripted 256-d GGUF)",
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
