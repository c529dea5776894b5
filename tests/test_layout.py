"""The house rules of the code: small modules, short functions, tests beside packages."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

MAX_MODULE_LINES = 400
#: Lines of a function's body, its signature and docstring not counted.
MAX_BODY_LINES = 60
#: The simulator's one generative loop reads best whole (it is not product code).
LONG_ALLOWED = {("crmkit/simulate/history.py", "simulate_chunk")}


def _sources() -> list:
    return sorted([*(ROOT / "crmkit").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])


def test_no_module_over_400_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in _sources()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and len(body) > 1:
        body = body[1:]
    return (body[-1].end_lineno or 0) - body[0].lineno + 1


def test_no_function_body_over_60_lines():
    long = []
    for path in _sources():
        rel = str(path.relative_to(ROOT))
        functions = [
            node
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        long += [
            f"{rel}:{f.name}"
            for f in functions
            if _body_lines(f) > MAX_BODY_LINES and (rel, f.name) not in LONG_ALLOWED
        ]
    assert long == []


def test_the_top_level_holds_only_shared_names_and_every_package_has_its_tests():
    top = {p.stem for p in (ROOT / "crmkit").glob("*.py")}
    assert top == {"__init__", "api", "columns", "errors", "hashing", "numbers", "schema"}
    packages = {p.name for p in (ROOT / "crmkit").iterdir() if (p / "__init__.py").is_file()}
    assert packages == {
        "campaigns", "config", "features", "ingest", "io", "models", "report", "segments",
        "simulate", "store",
    }  # fmt: skip
    for package in packages:
        assert list((ROOT / "tests" / package).glob("test_*.py")), f"no tests/{package}/"
