"""data_setup's modules depend on each other one way only, and never on the kit's s3f_* modules.

Every import counts, the ones inside functions too: a lazy import hides a circle from Python's
import machinery but not from a reader.
"""

import ast
from pathlib import Path

from tests.helpers import assert_acyclic

PACKAGE = Path(__file__).resolve().parent.parent / "data_setup"

# data_setup.audit_cache still imports files_fingerprint (as _fingerprint) and default_cache_dir
# from data_setup.loading, which re-exports them from data_setup.cache. Importing them from
# data_setup.cache there closes the last circle; then delete this entry.
PENDING: set[tuple[str, str]] = set()  # known edges still to remove (none)


def _module_name(path: Path) -> str:
    return "data_setup" if path.stem == "__init__" else f"data_setup.{path.stem}"


def _public_names() -> dict[str, str]:
    """data_setup/__init__.py's _PUBLIC: name → the submodule it is imported from."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["_PUBLIC"]:
            return ast.literal_eval(node.value)
    raise AssertionError("data_setup/__init__.py has no _PUBLIC table")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute names), at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package
                base = "data_setup" + (f".{node.module}" if node.module else "")
            else:
                base = node.module
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # a submodule, maybe
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in sorted(PACKAGE.glob("*.py"))}
    public = _public_names()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imported in _imports(path) - {"data_setup"}:  # the package: what it names, below
            if imported in modules:
                deps.add(imported)
            elif imported.startswith("data_setup.") and imported.count(".") == 1:
                attribute = imported.split(".", 1)[1]
                if attribute in public:  # `from data_setup import load_dataset`
                    deps.add(f"data_setup.{public[attribute]}")
        if name == "data_setup":  # its __getattr__ imports each _PUBLIC module on first use
            deps |= {f"data_setup.{module}" for module in public.values()}
        graph[name] = deps - {name}
    return graph


def test_the_graph_sees_the_imports_it_checks():
    graph = _graph()
    # a parser that missed imports would find no circle in an empty graph
    assert {"data_setup.cache", "data_setup.splitting"} <= graph["data_setup.loading"]
    assert "data_setup.audit_cache" in graph["data_setup.splitting"]  # inside a function
    assert "data_setup.loading" in graph["data_setup"]  # through _PUBLIC


def test_data_setup_has_no_import_cycle():
    graph = _graph()
    edges = {(a, b) for a, deps in graph.items() for b in deps}
    assert PENDING <= edges, f"no longer imported, remove from PENDING: {PENDING - edges}"
    assert_acyclic({a: {b for b in deps if (a, b) not in PENDING} for a, deps in graph.items()})


def test_layouts_does_not_import_custom():
    # custom detects your data's layout from layouts' pieces; layouts lists every layout itself
    graph = _graph()
    assert "data_setup.layouts" in graph["data_setup.custom"]
    assert "data_setup.custom" not in graph["data_setup.layouts"]


def test_data_setup_never_imports_the_kits_root_modules():
    kit = {p.stem for p in PACKAGE.parent.glob("s3f_*.py")}
    assert kit, "no s3f_*.py at the repository root: the check would pass vacuously"
    offenders = {
        (path.name, imported)
        for path in sorted(PACKAGE.glob("*.py"))
        for imported in _imports(path)
        if imported.split(".")[0] in kit or imported.startswith("s3f_")
    }
    assert not offenders
