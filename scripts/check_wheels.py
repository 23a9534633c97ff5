"""CI check of the three distributions as a user installs them.

Builds the wheels of llm-engine-clients, langchain-selfhosted, llama-index-llms-selfhosted,
llama-index-embeddings-selfhosted and llama-index-postprocessor-selfhosted-rerank, installs them
into a new virtual environment (no editable paths, no repository on sys.path), and then:

* imports every public name of each package from a working directory that holds its own top-level
  ``integrations`` package (a common application package name), which must still be the one imported;
* checks that no distribution installed a top-level ``integrations`` package.

Run by scripts/test.sh; ``python scripts/check_wheels.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = [
    ROOT,
    ROOT / "integrations" / "langchain",
    ROOT / "integrations" / "llamaindex",
    ROOT / "integrations" / "llamaindex" / "embeddings",
    ROOT / "integrations" / "llamaindex" / "postprocessor",
]

PROBE = textwrap.dedent(
    """
    import importlib, sys
    import integrations
    assert integrations.MARKER == "the application's own", integrations.__file__
    expected = {
        "engine_clients": None,
        "langchain_selfhosted": ["ChatTGI", "ChatVLLM", "ChatLlamaCpp", "ChatEngine",
                                 "TGILLM", "VLLMLLM", "LlamaCppLLM", "EngineTextLLM",
                                 "LlamaCppEmbeddings", "VLLMEmbeddings", "TEIEmbeddings", "SelfHostedRerank"],
        "llama_index.llms.selfhosted": ["TGI", "VLLM", "LlamaCpp", "EngineLLM"],
        "llama_index.embeddings.selfhosted": ["LlamaCppEmbedding", "VLLMEmbedding", "TEIEmbedding"],
        "llama_index.postprocessor.selfhosted_rerank": ["SelfHostedRerank"],
    }
    for name, required in expected.items():
        module = importlib.import_module(name)
        assert "site-packages" in module.__file__, (name, module.__file__)
        missing = [n for n in (required or []) if n not in module.__all__]
        assert not missing, (name, missing)
        for public in module.__all__:
            getattr(module, public)
        print(f"{name}: {len(module.__all__)} public names from {module.__file__}")
    """
)


def run(*cmd: str | Path, cwd: Path | None = None) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=cwd)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wheel-check-") as tmp:
        work = args.keep or Path(tmp)
        wheels, env, app = work / "wheels", work / "venv", work / "app"
        for project in PROJECTS:
            run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, project)
        built = sorted(wheels.glob("*.whl"))
        print("built:", ", ".join(w.name for w in built))
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        python = env / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", *built)
        run(python, "-m", "pip", "check")
        # A user's application with its own top-level `integrations` package.
        (app / "integrations").mkdir(parents=True, exist_ok=True)
        (app / "integrations" / "__init__.py").write_text('MARKER = "the application\'s own"\n')
        run(python, "-c", PROBE, cwd=app)
        # Outside the application, nothing named `integrations` is installed.
        absent = "import importlib.util as u, sys; sys.exit(u.find_spec('integrations') is not None)"
        run(python, "-c", absent, cwd=work)
        print("wheel check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
