"""The layering, read from the import graph of the package's source (module-level, lazy and
type-checking imports, ``require("x")`` and ``importlib.import_module("x")`` alike)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "crnn_onnx"
GROUND_FLOOR = {"errors", "config", "contract", "results", "records", "atomic", "extras",
                "weights", "__version__"}
#: Optional dependencies, and the subpackages (module-name prefixes) allowed to import them.
OPTIONAL = {
    # Exporting and training need torch; inference (and everything else) never does.
    "torch": ("export.", "training."),
    "onnx": ("export.", "perf.", "scale.", "inspection."),
    "onnxconverter_common": ("export.",),
    "onnxruntime": ("inference.engines.", "export.", "perf."),
    "ray": ("scale.",),
    "pyarrow": ("scale.",),
    "tritonclient": ("scale.",),
    "PIL": ("synth.",),
    "lmdb": ("evaluation.",),
    "openvino": ("inference.engines.openvino",),
}
#: What each package may import from the toolkit, besides the ground floor.
ALLOWED = {
    "inference": {"inference"},
    "export": {"export", "inference"},
    "evaluation": {"evaluation", "inference"},
    "perf": {"perf", "inference", "export", "synth"},
    "scale": {"scale", "inference"},
    "synth": {"synth"},
    # Training fine-tunes the export package's model and reads evaluation's labelled sets.
    "training": {"training", "synth", "inference", "export", "evaluation"},
    "inspection": {"inspection"},
}
MAX_LINES = 300


@cache
def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): path
        for path in sorted(PACKAGE.rglob("*.py"))
    }


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(_modules()[name].read_text(encoding="utf-8"))


@cache
def _imports(name: str) -> frozenset[str]:
    """Every module ``name`` imports, anywhere in its body, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id == "require")
                   or (isinstance(node.func, ast.Attribute)
                       and node.func.attr == "import_module"))):
            found.add(node.args[0].value)
    return frozenset(found)


def _toolkit_imports(name: str) -> set[str]:
    """The toolkit modules ``name`` imports, without the ``crnn_onnx.`` prefix."""
    return {m.removeprefix("crnn_onnx.") for m in _imports(name) if m.startswith("crnn_onnx.")}


def _module_of(target: str) -> str | None:
    """The module a dotted toolkit name lives in (``contract.ModelSpec`` → ``contract``,
    ``inference`` → ``inference.__init__``), or ``None`` when there is none."""
    modules = _modules()
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        for candidate in (prefix, f"{prefix}.__init__"):
            if candidate in modules:
                return candidate
    return None


def _dependencies(name: str) -> set[str]:
    """The toolkit modules ``name`` depends on, itself left out."""
    found = {_module_of(target) for target in _toolkit_imports(name)}
    return {m for m in found if m is not None and m != name}


LIBRARY = [name for name in _modules() if not name.startswith(("cli", "__main__"))]


def test_the_map_covers_every_package() -> None:
    packages = {name.split(".")[0] for name in _modules() if "." in name}
    assert packages == set(ALLOWED) | {"cli"}


@pytest.mark.parametrize("name", LIBRARY)
def test_library_modules_import_only_what_their_layer_allows(name: str) -> None:
    package = name.split(".")[0] if "." in name else None
    allowed = ALLOWED.get(package, set()) if package else set()
    for target in _toolkit_imports(name):
        top = target.split(".")[0]
        assert top != "cli", f"{name} imports the CLI ({target})"
        assert top in GROUND_FLOOR or top in allowed, f"{name} may not import {target}"


def test_no_module_depends_on_itself_through_others() -> None:
    """No import circle, however long and wherever the import sits (a lazy import hides a
    circle from Python, not from the design): following imports never leads back."""
    graph = {name: _dependencies(name) for name in _modules()}
    state: dict[str, str] = {}  # "open" while on the path being walked, then "done"

    def walk(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                circle = [*path[path.index(dep):], dep]
                pytest.fail(f"import circle: {' -> '.join(circle)}")
            if dep not in state:
                walk(dep, [*path, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            walk(name, [name])


@pytest.mark.parametrize("name", [n for n in _modules() if n.startswith("inference")])
def test_inference_never_imports_torch_ray_or_onnx(name: str) -> None:
    heavy = {m.split(".")[0] for m in _imports(name)} & {"torch", "ray", "onnx", "pyarrow"}
    assert not heavy, f"{name} imports {sorted(heavy)}"


@pytest.mark.parametrize("name", list(_modules()))
def test_optional_extras_stay_inside_their_subpackage(name: str) -> None:
    for module in _imports(name):
        top = module.split(".")[0]
        if top in OPTIONAL:
            assert name.startswith(OPTIONAL[top]), f"{name} imports {module}"


def _strings(node: ast.AST) -> set[str]:
    return {c.value for c in ast.walk(node)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)}


@pytest.mark.parametrize("name", LIBRARY)
def test_no_library_module_runs_the_cli_as_a_subprocess(name: str) -> None:
    """No process start names the toolkit, and no argument list reads ``-m crnn_onnx``."""
    starters = {"system", "popen", "execv", "execvp", "execl", "execlp", "spawnv", "spawnl"}
    for node in ast.walk(_tree(name)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                isinstance(node.func.value, ast.Name)
                and (node.func.value.id == "subprocess"
                     or (node.func.value.id == "os" and node.func.attr in starters))):
            assert not _strings(node) & {"crnn_onnx", "crnn-onnx"}, f"{name} runs the CLI"
        if isinstance(node, ast.List | ast.Tuple):
            assert not {"-m", "crnn_onnx"} <= _strings(node), f"{name} runs the CLI"


@pytest.mark.parametrize("name", list(_modules()))
def test_modules_stay_small(name: str) -> None:
    lines = len(_modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; a module that big holds two jobs"


@pytest.mark.parametrize("name", list(_modules()))
def test_public_names_are_defined_where_they_are_exported(name: str) -> None:
    """No compatibility re-exports: every name in ``__all__`` is defined in its module."""
    tree = _tree(name)
    exported: list[str] = []
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                defined.update(n.id for n in names if isinstance(n, ast.Name))
                if (isinstance(target, ast.Name) and target.id == "__all__"
                        and isinstance(node.value, (ast.List, ast.Tuple))):
                    exported = [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    assert set(exported) <= defined, f"{name} re-exports {sorted(set(exported) - defined)}"
