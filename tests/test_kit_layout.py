"""The kit's package layout (issue 20): no import circle between its modules or its rooms,
long modules that say why in their docstring, and docs/architecture.md naming every module in
its layer, with nothing importing a layer below its own.

Every import counts, the ones inside functions too (as in test_data_imports.py): a lazy import
hides a circle from Python's import machinery but not from a reader.
"""

import ast
import re
from pathlib import Path

from tests.helpers import assert_acyclic

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "s3f_kit"
TOP_LEVEL = ("s3f_common", "s3f_preprocessing")  # the model and its record, beside the package
ROOMS = ("run", "sweep", "reports", "apply")
LONG = 420  # lines: a module stays under ~400 or says why ("Why ~N lines: ...")


def _modules() -> dict[str, Path]:
    found = {name: REPO / f"{name}.py" for name in TOP_LEVEL}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module an import of `path` names, at any depth of the file (`from a import b`
    names a and a.b: b may be a submodule); the kit imports absolutely."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{path}: a relative import"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(path):
            parts = imported.split(".")  # importing a.b.c imports a and a.b first
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(modules)
        graph[name] = deps - {name}
    return graph


def _room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "s3f_kit" and len(parts) > 1 and parts[1] in ROOMS:
        return ".".join(parts[:2])
    return module  # the package root's modules and the top-level modules stand alone


def test_the_graph_sees_the_imports_it_checks():
    graph = _graph()
    # a parser that missed imports would find no circle in an empty graph
    assert "s3f_kit.experiments" in graph["s3f_common"]
    assert "s3f_kit.notebooks" in graph["s3f_kit.sweep.jobs"]
    assert "s3f_kit.reports.results_calibration" in graph["s3f_kit.reports.results"]  # lazy
    assert {"s3f_kit", "s3f_kit.reports"} <= graph["s3f_kit.reports.results"]
    assert len(graph) > 30


def test_no_import_circle_between_modules():
    assert_acyclic(_graph())


def test_no_import_circle_between_rooms():
    rooms: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        room = _room(module)
        rooms.setdefault(room, set()).update(_room(d) for d in deps if _room(d) != room)
    assert {"s3f_kit.run", "s3f_kit.reports"} <= rooms["s3f_kit.apply"]
    assert_acyclic(rooms)


def test_the_package_files_import_nothing():
    # `import s3f_common` imports s3f_kit.experiments, so s3f_kit/__init__.py runs first: the
    # package files stay empty of imports, or the model would pull in every room
    for path in _modules().values():
        if path.name == "__init__.py":
            assert not _imports(path), f"{path.relative_to(REPO)} imports {_imports(path)}"


def test_long_modules_say_why_in_their_docstring():
    for path in sorted({*_modules().values(), *REPO.glob("s3f_*.py")}):
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines <= LONG:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        stated = re.search(r"Why (?:one module of )?~(\d+) lines", doc)
        where = path.relative_to(REPO)
        assert stated, f"{where}: {lines} lines, and its docstring does not say why"
        assert int(stated[1]) >= 0.8 * lines, f"{where}: says ~{stated[1]} lines, has {lines}"


ARCHITECTURE = REPO / "docs" / "architecture.md"


def _layers() -> dict[str, int]:
    """docs/architecture.md's layers: each module its table names → the layer's number."""
    layers, number = {}, 0
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"## Layer (\d+)", line)
        if heading:
            number = int(heading[1])
        elif number and line.startswith("| `"):
            for path in re.findall(r"`([\w/]+\.py)`", line.split("|")[1]):
                layers[path[: -len(".py")].replace("/", ".")] = number
    return layers


def _all_modules() -> dict[str, Path]:
    """The kit's modules and data_setup's, package files left out (they import nothing)."""
    found = {name: path for name, path in _modules().items() if path.stem != "__init__"}
    for path in sorted((REPO / "data_setup").glob("*.py")):
        if path.stem != "__init__":
            found[f"data_setup.{path.stem}"] = path
    return found


def test_the_architecture_page_names_every_module_once():
    layers, modules = _layers(), _all_modules()
    assert set(layers) == set(modules), (
        f"docs/architecture.md: missing {sorted(set(modules) - set(layers))}, "
        f"stale {sorted(set(layers) - set(modules))}"
    )


def test_nothing_imports_a_layer_below_its_own():
    layers, modules = _layers(), _all_modules()
    upward = set()
    for name, path in modules.items():
        if name not in layers:
            continue  # test_the_architecture_page_names_every_module_once names it
        for imported in _imports(path):
            parts = imported.split(".")
            for target in {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(layers):
                if target != name and layers[target] > layers[name]:
                    upward.add(f"{name} (layer {layers[name]}) imports {target} "
                               f"(layer {layers[target]})")  # fmt: skip
    assert not upward, "\n".join(sorted(upward))


def test_the_layer_rule_sees_an_upward_import():
    # a checker that read no layers or no imports would pass anything
    layers = _layers()
    assert layers["data_setup.datasets"] < layers["s3f_kit.experiments"] < layers["s3f_common"]
    assert layers["s3f_common"] < layers["s3f_kit.reports.results"] < layers["s3f_kit.run.training"]
    assert "s3f_kit.experiments" in {
        m for m in _imports(REPO / "s3f_common.py") if m.startswith("s3f_kit")
    }
