"""Batch frameworks for integration tests: a cached virtual environment with Ray Data, PySpark, Dask and this
project, in which a job starts its own local cluster (Ray), local-mode session (Spark, on the machine's
Java 17+) or local scheduler (Dask).

Ray (``ray[data]``, pinned, without the ``[llm]`` extra), ``pyspark`` and ``dask[dataframe]`` are installed
into ``<cache>/ray`` together with this source tree's ``engine_clients`` and ``langchain_selfhosted`` as
editable installs, so a job run with :func:`ray_python` imports the code under test, in the driver and in
every worker. The wheels (Ray, pyarrow, pandas, numpy, PySpark's 460 MB of jars: under a minute to download
here) land in pip's cache, so a second install takes seconds. The environment is rebuilt when this
project's ``pyproject.toml`` files (its dependencies) or the pinned versions change.

``$ENGINE_CLIENTS_RAY_PYTHON`` (a python that can import ``ray.data``, ``pyspark``, ``dask.dataframe``,
``engine_clients`` and ``langchain_selfhosted``) skips the installation.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

from .provision import ProvisionError
from .provision import _create_venv
from .provision import _locked
from .provision import _probe
from .provision import _quiet_env
from .provision import _run
from .provision import _say
from .provision import _venv_python
from .provision import cache_root

__all__ = ["RAY_VERSION", "ensure_ray", "project_root", "ray_python", "run_ray_job"]

RAY_VERSION = "2.60.0"
_FRAMEWORKS = ("pyspark==4.3.0", "dask[dataframe]==2026.11.0")

_RAY_PROBE = (
    "import ray, ray.data, pyspark, dask.dataframe, engine_clients, langchain_selfhosted\n"
    "print(ray.__version__)\n"
)


def project_root() -> Path:
    """The source tree this package was imported from (``pyproject.toml`` at its top)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "integrations" / "langchain").is_dir():
        raise ProvisionError(f"{root} is not this project's source tree (the Ray tier needs a checkout)")
    return root


def _stamp(root: Path) -> str:
    h = hashlib.sha256(" ".join((RAY_VERSION, *_FRAMEWORKS)).encode())
    for f in (root / "pyproject.toml", root / "integrations" / "langchain" / "pyproject.toml"):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def ray_python() -> Path:
    """The python of the Ray environment (see :func:`ensure_ray`)."""
    override = os.environ.get("ENGINE_CLIENTS_RAY_PYTHON")
    return Path(override).expanduser() if override else _venv_python(cache_root() / "ray")


def _ready(python: Path, stamp_file: Path, stamp: str) -> bool:
    try:
        if stamp_file.read_text() != stamp:
            return False
    except OSError:
        return False
    return _probe(python, _RAY_PROBE, timeout=120) == RAY_VERSION


def ensure_ray() -> Path:
    """Install Ray Data and this project into the cached Ray environment if needed; return its python."""
    override = os.environ.get("ENGINE_CLIENTS_RAY_PYTHON")
    if override:
        python = Path(override).expanduser()
        if _probe(python, _RAY_PROBE, timeout=120) is None:
            raise ProvisionError(
                f"ENGINE_CLIENTS_RAY_PYTHON={override} cannot import ray.data, pyspark, dask and this project"
            )
        return python
    root = project_root()
    python = ray_python()
    venv = python.parent.parent
    stamp_file = venv / ".engine-clients-stamp"
    stamp = _stamp(root)
    if _ready(python, stamp_file, stamp):
        return python
    with _locked("ray"):
        if _ready(python, stamp_file, stamp):
            return python
        _create_venv(venv, "ray")
        _say(f"installing ray[data]=={RAY_VERSION}, pyspark, dask and this project (about 1 GB cold; cached)")
        _run(
            [
                python, "-m", "pip", "install",
                f"ray[data]=={RAY_VERSION}", *_FRAMEWORKS,
                "-e", root,
                "-e", root / "integrations" / "langchain",
            ],
            prefix="ray pip",
        )  # fmt: skip
        if _probe(python, _RAY_PROBE, timeout=120) != RAY_VERSION:
            raise ProvisionError(f"{venv}: ray.data, pyspark, dask.dataframe or this project does not import")
        stamp_file.write_text(stamp)
    return python


def run_ray_job(
    script: Path | str,
    args: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the Ray environment's python (a fresh driver process that starts and stops its
    own local cluster or Spark session; Spark's Python workers get the same python), bounded by ``timeout``
    seconds; returns the finished process (stdout and stderr captured). The script's process group is
    killed when the time runs out, Ray's daemons and Spark's JVM with it."""
    python = ensure_ray()
    quiet = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0", "PYSPARK_PYTHON": str(python)}
    full_env = _quiet_env({**quiet, **(env or {})})
    proc = subprocess.Popen(
        [str(python), str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=full_env,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, -9, out, err + f"\n[timed out after {timeout:.0f} s]")
    except BaseException:  # interrupted (a test's own timeout, Ctrl-C): take the cluster down with it
        _kill_group(proc.pid)
        proc.wait()
        raise
    _kill_group(proc.pid)  # whatever the driver left behind (Ray's raylet, GCS and workers share its group)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
