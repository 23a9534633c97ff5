"""Build JSON Schemas of SGLang's request models from the released wheel, for the contract tests
(``tests/unit/test_sglang_contract.py``). The outputs are committed under ``tests/data/sglang/``; SGLang's
own code is never copied into the repository.

    pip download --no-deps sglang==0.5.23 -d /tmp/sgl && unzip -q /tmp/sgl/sglang-0.5.23-*.whl -d /tmp/sgl/whl
    python -m venv /tmp/sglvenv && /tmp/sglvenv/bin/pip install pydantic msgspec openai==2.8.0
    /tmp/sglvenv/bin/python scripts/sglang_schemas.py /tmp/sgl/whl --wheel /tmp/sgl/sglang-0.5.23-*.whl

* ``sglang/srt/entrypoints/openai/protocol.py`` imports only pydantic, msgspec, openai's types and
  ``sglang.utils.convert_json_schema_to_str`` (stubbed here; ``xgrammar`` is optional there). Its
  ``ChatCompletionRequest``, ``CompletionRequest``, ``EmbeddingRequest``, ``V1RerankReqInput`` and
  ``TokenizeRequest`` give their pydantic ``model_json_schema()`` (validation mode) unchanged.
* ``GenerateReqInput`` (``srt/managers/io_struct.py``) imports torch and zmq, so it is read with ``ast``: its
  dataclass fields are the properties. A field the ``/generate`` contract gate types
  (``sglang/api/v1/api_types.py`` ``GenerateRequest``, called by ``srt/entrypoints/api_contract.py``) takes
  the gate's type. FastAPI parses the body into the stdlib dataclass, which ignores unknown keys, so the
  schema leaves ``additionalProperties`` open and says so in ``x-sglang-unknown-keys``.
* ``sampling_params`` (``$defs/SamplingParams``): the gate's ``SamplingParams`` rejects unknown keys (a 400),
  so ``additionalProperties: false``; each field is checked to exist in ``srt/sampling/sampling_params.py``
  ``SamplingParams``, whose ``verify()`` bounds (written out below) and "only one of json_schema, regex,
  ebnf, structural_tag" are added.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

OPENAI_MODELS = (
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "V1RerankReqInput",
    "TokenizeRequest",
)
PROTOCOL = "sglang/srt/entrypoints/openai/protocol.py"
IO_STRUCT = "sglang/srt/managers/io_struct.py"
SAMPLING = "sglang/srt/sampling/sampling_params.py"
API_TYPES = "sglang/api/v1/api_types.py"
# sampling_params.py SamplingParams.verify(): the bounds a request outside of gets a 400
VERIFY: dict[str, dict[str, Any]] = {
    "temperature": {"minimum": 0},
    "top_p": {"exclusiveMinimum": 0, "maximum": 1},
    "min_p": {"minimum": 0, "maximum": 1},
    "frequency_penalty": {"minimum": -2, "maximum": 2},
    "presence_penalty": {"minimum": -2, "maximum": 2},
    "repetition_penalty": {"exclusiveMinimum": 0, "maximum": 2},
    "min_new_tokens": {"minimum": 0},
    "max_new_tokens": {"minimum": 0},
    "beam_width": {"minimum": 1},
}
GRAMMARS = ("json_schema", "regex", "ebnf", "structural_tag")
SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "bytes": "string"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- protocol.py through pydantic --------------------------------------------------------------------------


def openai_schemas(root: Path) -> dict[str, Any]:
    pkg = types.ModuleType("sglang")
    pkg.__path__ = []
    utils = types.ModuleType("sglang.utils")
    utils.convert_json_schema_to_str = json.dumps  # type: ignore[attr-defined]
    sys.modules.update({"sglang": pkg, "sglang.utils": utils})
    spec = importlib.util.spec_from_file_location("sglang_openai_protocol", root / PROTOCOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return {name: getattr(module, name).model_json_schema() for name in OPENAI_MODELS}


# ---- io_struct.py / api_types.py / sampling_params.py through ast ------------------------------------------


def class_fields(path: Path, name: str) -> dict[str, ast.expr]:
    """The annotated class-level fields of ``name`` (a dataclass or msgspec Struct), in order."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {
                stmt.target.id: stmt.annotation
                for stmt in node.body
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            }
    raise SystemExit(f"{name} not found in {path}")


def aliases(path: Path) -> dict[str, ast.expr]:
    """Module-level ``Name = <type>`` (and ``Name: TypeAlias = <type>``) assignments."""
    out: dict[str, ast.expr] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            out[node.target.id] = node.value
    return out


class Translator:
    """A Python type annotation (as ``ast``) to JSON Schema; names resolve through the file's aliases, a
    class of the file with fields becomes a ``$defs`` entry, anything else is left open (``{}``)."""

    def __init__(self, path: Path, defs: dict[str, Any], refs: dict[str, str] | None = None) -> None:
        self.path, self.defs, self.refs = path, defs, refs or {}
        self.aliases = aliases(path)

    def __call__(self, node: ast.expr) -> dict[str, Any]:
        if isinstance(node, ast.Constant):
            if node.value is None:
                return {"type": "null"}
            if isinstance(node.value, str):  # a string annotation (forward reference)
                return self(ast.parse(node.value, mode="eval").body)
        if isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            return self.named(name)
        if isinstance(node, ast.Subscript):
            head = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
            args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
            if head == "Optional":
                return _any_of([self(args[0]), {"type": "null"}])
            if head == "Union":
                return _any_of([self(a) for a in args])
            if head in ("List", "list", "Sequence", "Set", "set", "Tuple", "tuple"):
                return {"type": "array", "items": self(args[0])}
            if head in ("Dict", "dict", "Mapping"):
                return {"type": "object", "additionalProperties": self(args[1]) if len(args) > 1 else {}}
            if head == "Literal":
                return {"enum": [a.value for a in args if isinstance(a, ast.Constant)]}
            if head == "Annotated":
                return self(args[0])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return _any_of([self(node.left), self(node.right)])
        return {"x-sglang-type": ast.unparse(node)}

    def named(self, name: str) -> dict[str, Any]:
        if name in SCALARS:
            return {"type": SCALARS[name]}
        if name in ("dict", "Dict"):
            return {"type": "object"}
        if name in ("list", "List"):
            return {"type": "array"}
        if name in ("Any", "object"):
            return {}
        if name in self.refs:
            return {"$ref": f"#/$defs/{self.refs[name]}"}
        if name in self.aliases:
            return self(self.aliases[name])
        return {"x-sglang-type": name}


def _any_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for p in parts:
        for q in p["anyOf"] if set(p) == {"anyOf"} else [p]:
            if q not in flat:
                flat.append(q)
    if any(not q for q in flat):  # Any absorbs the rest
        return {}
    return flat[0] if len(flat) == 1 else {"anyOf": flat}


def sampling_schema(root: Path, defs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    gate = class_fields(root / API_TYPES, "SamplingParams")
    engine = class_fields(root / SAMPLING, "SamplingParams")
    missing = [f for f in gate if f not in engine]
    tr = Translator(root / API_TYPES, defs, {"WatermarkRequestConfig": "WatermarkRequestConfig"})
    defs["WatermarkRequestConfig"] = {
        "type": "object",
        "properties": {k: tr(v) for k, v in class_fields(root / API_TYPES, "WatermarkRequestConfig").items()},
        "additionalProperties": False,
    }
    props = {}
    for name, ann in gate.items():
        schema = tr(ann)
        if name in VERIFY:
            schema = {**schema, **VERIFY[name]}  # bounds apply to numbers; null passes them
        props[name] = schema
    pairs = [{"required": [a, b]} for i, a in enumerate(GRAMMARS) for b in GRAMMARS[i + 1 :]]
    one_grammar = {"not": {"anyOf": pairs}}
    return {
        "title": "SamplingParams",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "allOf": [one_grammar],
        "x-sglang-unknown-keys": "rejected (400: api_types.py decode_SamplingParams)",
        "x-sglang-grammar-rule": "verify(): at most one non-null of json_schema, regex, ebnf, structural_tag",
    }, missing


def generate_schema(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    defs: dict[str, Any] = {}
    sampling, missing = sampling_schema(root, defs)
    defs["SamplingParams"] = sampling
    gate = class_fields(root / API_TYPES, "GenerateRequest")
    fields = class_fields(root / IO_STRUCT, "GenerateReqInput")
    gate_tr = Translator(root / API_TYPES, defs, {"SamplingParams": "SamplingParams"})
    io_tr = Translator(root / IO_STRUCT, defs)
    props = {name: gate_tr(gate[name]) if name in gate else io_tr(ann) for name, ann in fields.items()}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "GenerateReqInput",
        "type": "object",
        "properties": props,
        "$defs": defs,
        "x-sglang-unknown-keys": "ignored (FastAPI parses the body into the stdlib dataclass)",
    }
    notes = {
        "gate_fields_not_in_io_struct": [f for f in gate if f not in fields],
        "gate_sampling_fields_not_in_sampling_params_py": missing,
    }
    return schema, notes


# The runtime adapter routes (http_server.py /load_lora_adapter, /unload_lora_adapter): msgspec structs of
# io_struct.py (kw_only, so a missing required field is refused); lora_id is the server's own, never sent.
ADAPTER_REQUESTS = ("LoadLoRAAdapterReqInput", "UnloadLoRAAdapterReqInput")


def adapter_schemas(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    tree = ast.parse((root / IO_STRUCT).read_text(encoding="utf-8"))
    for name in ADAPTER_REQUESTS:
        fields = class_fields(root / IO_STRUCT, name)
        tr = Translator(root / IO_STRUCT, {})
        [node] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name]
        required = [  # msgspec: a field without a default is required (sglang's pydantic bridge agrees)
            st.target.id
            for st in node.body
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) and st.value is None
        ]
        out[name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": name,
            "type": "object",
            "properties": {f: tr(ann) for f, ann in fields.items()},
            "required": required,
            "x-sglang-unknown-keys": "ignored (msgspec_utils.py: extra_behavior='ignore')",
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", type=Path, help="the unpacked wheel (the folder holding sglang/)")
    ap.add_argument("--wheel", type=Path, help="the .whl file itself (for its sha256)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/data/sglang")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    schemas = openai_schemas(args.root)
    schemas["GenerateReqInput"], notes = generate_schema(args.root)
    schemas.update(adapter_schemas(args.root))
    for name, schema in schemas.items():
        text = json.dumps(schema, indent=1, sort_keys=True) + "\n"
        (args.out / f"{name}.schema.json").write_text(text, encoding="utf-8")
    version = (args.root / "sglang/version.py").exists() and _dist_version(args.root)
    provenance = {
        "sglang_version": version,
        "wheel": args.wheel.name if args.wheel else None,
        "wheel_sha256": sha256(args.wheel) if args.wheel else None,
        "sources": {p: sha256(args.root / p) for p in (PROTOCOL, IO_STRUCT, SAMPLING, API_TYPES)},
        "schemas": sorted(f"{n}.schema.json" for n in schemas),
        "generator": "scripts/sglang_schemas.py",
        "python_packages": {m: _version_of(m) for m in ("pydantic", "msgspec", "openai")},
        **notes,
    }
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(schemas)} schemas and provenance.json to {args.out}")
    return 0


def _dist_version(root: Path) -> str | None:
    for info in root.glob("sglang-*.dist-info/METADATA"):
        for line in info.read_text(encoding="utf-8").splitlines():
            if line.startswith("Version: "):
                return line.split(": ", 1)[1]
    return None


def _version_of(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
