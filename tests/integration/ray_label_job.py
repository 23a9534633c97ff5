"""A Ray Data batch job that labels rows with a self-hosted model, run by ``test_ray_batch.py`` with the Ray
environment's python (``engine_clients.testing.ray_env``): a fresh driver that starts a local cluster.

Two jobs over the same rows, each ``map_batches`` with a callable class (a pool of actors):

* ``langchain``: the actors get ``ChatLlamaCpp`` models (one per replica), pickled by Ray and shipped to the
  actor processes; each model opens its connections there, on first use;
* ``client``: the actors get only URLs and build an ``EnginePool`` over the replicas in ``__init__``.

Every row is answered or carries its own error (``error_type``, ``error``): one bad row never fails the job.
Rows whose id is in ``--bad`` get a prompt far over the context window. Writes a JSON report to ``--out``.

    python ray_label_job.py --replicas URL [URL ...] --rows 300 --bad 7 99 --out report.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from typing import Any

import numpy as np
import ray
from langchain_selfhosted import ChatLlamaCpp

from engine_clients import EnginePool

PROMPT = "Label this row: {}"
TOO_LONG = "word " * 40_000  # far over any replica's context window


def _prompt(row_id: int, bad: frozenset[int]) -> str:
    return TOO_LONG if row_id in bad else PROMPT.format(row_id)


def _labels(ids: np.ndarray, label: Any, bad: frozenset[int]) -> dict[str, np.ndarray]:
    """Call ``label(row_id, prompt)`` for each row; an error becomes that row's ``error``, not the batch's."""
    labels, errors, types = [], [], []
    for row_id in ids.tolist():
        try:
            labels.append(label(row_id, _prompt(row_id, bad)))
            errors.append("")
            types.append("")
        except Exception as exc:  # per row: the job goes on, the row says what happened
            labels.append("")
            errors.append(str(exc)[:300])
            types.append(type(exc).__name__)
    n = len(labels)
    return {
        "id": ids,
        "label": np.array(labels, dtype=object),
        "error": np.array(errors, dtype=object),
        "error_type": np.array(types, dtype=object),
        "pid": np.full(n, os.getpid()),
    }


class LangChainLabeler:
    """Holds LangChain chat models shipped from the driver (pickled without any connection)."""

    def __init__(self, models: list[ChatLlamaCpp], bad: list[int]) -> None:
        self.models = models
        self.bad = frozenset(bad)
        # what arrived: no client yet, so connections can only be opened here, in this process
        self.arrived_with_client = any(m._state.client is not None for m in models)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        def label(row_id: int, prompt: str) -> str:
            model = self.models[row_id % len(self.models)]
            return str(model.invoke(prompt).content).strip()

        out = _labels(batch["id"], label, self.bad)
        out["arrived_with_client"] = np.full(len(out["id"]), self.arrived_with_client)
        return out


class ClientLabeler:
    """Builds its own EnginePool over the replicas, in the actor process."""

    def __init__(self, replicas: list[str], bad: list[int]) -> None:
        self.pool = EnginePool(replicas, engine="llamacpp", max_retries=1)
        self.bad = frozenset(bad)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        def label(row_id: int, prompt: str) -> str:
            return self.pool.chat(prompt, temperature=0, max_tokens=16).content.strip()

        out = _labels(batch["id"], label, self.bad)
        out["arrived_with_client"] = np.zeros(len(out["id"]), dtype=bool)
        return out


def run(kind: str, replicas: list[str], rows: int, bad: list[int]) -> dict[str, Any]:
    if kind == "langchain":
        models = [ChatLlamaCpp(base_url=u, temperature=0, max_tokens=16, max_retries=1) for u in replicas]
        models[0].invoke("warm up the driver's own client")  # it must not travel with the model
        shipped_bytes = len(pickle.dumps(models))
        cls: Any = LangChainLabeler
        kwargs: dict[str, Any] = {"models": models, "bad": bad}
    else:
        shipped_bytes = len(pickle.dumps(replicas))
        cls, kwargs = ClientLabeler, {"replicas": replicas, "bad": bad}
    start = time.monotonic()
    ds = ray.data.range(rows, override_num_blocks=8).map_batches(
        cls,
        fn_constructor_kwargs=kwargs,
        batch_size=25,
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    result = ds.take_all()
    return {
        "rows": [
            {
                "id": int(r["id"]),
                "label": r["label"],
                "error": r["error"],
                "error_type": r["error_type"],
                "pid": int(r["pid"]),
                "arrived_with_client": bool(r["arrived_with_client"]),
            }
            for r in result
        ],
        "seconds": time.monotonic() - start,
        "shipped_bytes": shipped_bytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", nargs="+", required=True)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--bad", type=int, nargs="*", default=[])
    parser.add_argument("--jobs", nargs="+", default=["langchain", "client"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    t0 = time.monotonic()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    report: dict[str, Any] = {"driver_pid": os.getpid(), "ray": ray.__version__}
    try:
        report["init_seconds"] = time.monotonic() - t0
        for kind in args.jobs:
            report[kind] = run(kind, args.replicas, args.rows, args.bad)
    finally:
        ray.shutdown()
    report["total_seconds"] = time.monotonic() - t0
    with open(args.out, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
