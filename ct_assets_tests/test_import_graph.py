"""The package's import graph has no cycles (module-level imports, TYPE_CHECKING blocks included).

Imports inside functions are lazy by design (torch, matplotlib, the backtest from its asset) and are
left out: they cannot deadlock module initialisation.
"""

import ast
from pathlib import Path

import ct_assets

PACKAGE_ROOT = Path(ct_assets.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Modules of ``ct_assets`` that ``name`` imports outside function bodies."""
    imported: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            imported.add(base)
            imported.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        pending.extend(ast.iter_child_nodes(node))
    return {module for module in imported if module == "ct_assets" or module.startswith("ct_assets.")}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        imported = module_level_imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        graph[name] = (imported & paths.keys()) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_ct_assets_has_no_import_cycles():
    graph = import_graph()
    assert "ct_assets.core.backtest.engine" in graph
    assert cycles(graph) == []


def bound_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names a module defines, names it only imports) at any depth of its body."""
    defined: set[str] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(n.id for target in targets for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return defined, imported - defined


def re_exported_imports(roots: list[Path]) -> list[str]:
    """``from ct_assets.x import name`` where module ``x`` only imports ``name`` from elsewhere.

    Such an import works by accident and hides where ``name`` lives: import it from its home.
    """
    paths = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    bound = {name: bound_names(ast.parse(path.read_text())) for name, path in paths.items()}
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.ImportFrom) and node.module in bound):
                    continue
                only_imported = bound[node.module][1]
                found.extend(f"{path.name}:{node.lineno}: {alias.name} from {node.module}" for alias in node.names
                             if alias.name in only_imported and f"{node.module}.{alias.name}" not in paths)
    return found


def test_the_re_export_finder_finds_an_imported_name(tmp_path: Path):
    (tmp_path / "user.py").write_text("from ct_assets.core.backtest.replay import GateResult\n")
    assert re_exported_imports([tmp_path]) == ["user.py:1: GateResult from ct_assets.core.backtest.replay"]


def test_every_name_is_imported_from_the_module_that_defines_it():
    tests = Path(__file__).resolve().parent
    assert re_exported_imports([PACKAGE_ROOT, tests, tests.parent / "benchmarks", tests.parent / "scripts"]) == []
