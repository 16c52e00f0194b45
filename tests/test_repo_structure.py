"""The shape of the code base: no import circle, each pipeline stage findable from docs/ARCHITECTURE.md,
every real-model test marked ``slow``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: import name -> source folder (pyproject's package-dir)
ROOTS = {"calib_harness": REPO / "calib_harness", "calib_harness.verifiers": REPO / "verifiers",
         "calib_harness.sandbox": REPO / "sandbox", "calib_harness.tasks": REPO / "tasks"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in ROOTS.items():
        for f in folder.rglob("*.py"):
            parts = list(f.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = f
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement, at any depth (a function-level import is still an edge), except those under
    ``if TYPE_CHECKING:``, which never run."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, f in mods.items():
        base = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in _imports(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
                continue
            if node.level:
                parts = base.split(".")[: len(base.split(".")) - (node.level - 1)]
                src = ".".join(parts + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            for a in node.names:
                if f"{src}.{a.name}" in mods:
                    deps.add(f"{src}.{a.name}")
                elif src in mods:
                    deps.add(src)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_planted_circle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_import_graph_has_no_circle():
    graph = import_graph()
    assert "calib_harness.gatekeeper.store" in graph["calib_harness.gatekeeper.plots"]
    assert cycles(graph) == []


def test_every_stage_is_named_in_architecture_md():
    """Each module path ARCHITECTURE.md names exists, and every top-level module / subpackage is named."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    named = set(re.findall(r"`((?:calib_harness|verifiers|sandbox|tasks)/[\w/.]*)`", text))
    missing = sorted(p for p in named if not (REPO / p.rstrip("/")).exists())
    assert missing == []
    top = {f"calib_harness/{p.name}" + ("/" if p.is_dir() else "")
           for p in (REPO / "calib_harness").iterdir()
           if not p.name.startswith(("_", ".")) and (p.suffix == ".py" or (p / "__init__.py").exists())}
    unnamed = sorted(t for t in top if t not in named and t.rstrip("/") not in named)
    assert unnamed == []


REAL_MODEL_CALLS = re.compile(r"\b(resolve_model|from_pretrained|HFLM|get_model)\(|[\"']--model_args[\"']")


def _marked_slow(decorators, module_slow: bool) -> bool:
    return module_slow or any("slow" in ast.unparse(d) for d in decorators)


@pytest.mark.parametrize("path", sorted((REPO / "tests").glob("test_*.py")), ids=lambda p: p.name)
def test_real_model_tests_are_marked_slow(path):
    """A test whose body loads a model itself carries ``@pytest.mark.slow`` (tests that get a model through
    a fixture of conftest.REAL_MODEL_FIXTURES are marked there).  A test that names a model but must fail
    before loading it says so with a ``# loads no model`` comment in its body."""
    source = path.read_text()
    tree = ast.parse(source)
    module_slow = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                      and "slow" in ast.unparse(n.value) for n in tree.body)
    bad = []
    for n in tree.body:
        if isinstance(n, ast.FunctionDef) and n.name.startswith("test_"):
            if "# loads no model" in (ast.get_source_segment(source, n) or ""):
                continue
            if REAL_MODEL_CALLS.search(ast.unparse(n)) and not _marked_slow(n.decorator_list, module_slow):
                bad.append(n.name)
    assert bad == []


def test_conftest_marks_real_model_fixtures_slow(request):
    from conftest import REAL_MODEL_FIXTURES

    assert {"smollm2_path", "tiny_random_lm"} <= REAL_MODEL_FIXTURES
    assert "slow" in request.config.getini("markers")[0]
