"""The shape of the package: imports between hw2 modules go one way, privately named things stay
in their module, and modules stay small (except the course's one-concept modules)."""
import ast
from pathlib import Path

import pytest

HW2 = Path(__file__).resolve().parent.parent / "hw2"
#: The course's one-concept modules (and the answers), allowed past 500 lines.
LARGE_BY_DESIGN = {"layers", "optimizers", "training", "mlp", "classifier", "cnn", "answers"}


def _is_main_guard(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (what runs only as a script is not an import of the module)."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(path: Path):
    """``[(imported hw2 module, [names])]`` of a module, function-level imports included."""
    found = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if _is_main_guard(child):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module == "hw2":  # from hw2 import grids
                    found.extend((f"hw2.{a.name}", []) for a in child.names)
                elif child.module.startswith("hw2."):
                    found.append((child.module, [a.name for a in child.names]))
            elif isinstance(child, ast.Import):
                found.extend((a.name, []) for a in child.names if a.name.startswith("hw2."))
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def module_graph():
    """``{module: {modules it imports}}`` over ``hw2/*.py``."""
    return {f"hw2.{p.stem}": {m for m, _ in _imports(p)} for p in sorted(HW2.glob("*.py"))
            if p.stem != "__init__"}


def _cycle(graph):
    """A cycle as a list of modules, or None."""
    state = {}

    def dfs(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                found = dfs(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = dfs(start, [start])
            if found:
                return found
    return None


def test_imports_between_hw2_modules_have_no_cycle():
    graph = module_graph()
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    # The experiment pipeline's layers, top to bottom.
    # Only the demo (which drives the command line) imports it.
    assert {m for m, deps in graph.items() if "hw2.cli" in deps} == {"hw2.demo"}
    for low in ("hw2.validation", "hw2.atomic"):
        assert not {m for m in graph[low] if m.startswith("hw2.")}, low


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted(HW2.glob("*.py")), ids=lambda p: p.name)
def test_no_private_name_is_imported_from_another_module(path):
    private = [(m, n) for m, names in _imports(path) for n in names if n.startswith("_")]
    assert private == []


@pytest.mark.parametrize("path", sorted(HW2.glob("*.py")), ids=lambda p: p.name)
def test_modules_stay_small(path):
    if path.stem not in LARGE_BY_DESIGN:
        assert len(path.read_text().splitlines()) <= 500
