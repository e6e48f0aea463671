"""The core decides and never does I/O: no asyncio, sockets, clocks, randomness or shell imports."""

import ast
import pathlib

FORBIDDEN = {"asyncio", "aiohttp", "socket", "time", "random", "uvloop", "msgpack",
             "replnode.shell", "replnode.testing", "threading", "subprocess"}
CORE = pathlib.Path(__file__).resolve().parents[1] / "replnode" / "core"


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_nothing_that_does_io():
    offenders = {}
    files = sorted(CORE.rglob("*.py"))
    assert files, "no core modules found"
    for path in files:
        bad = {name for name in _imports(path)
               if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_storage_does_no_io():
    storage = CORE.parent / "storage"
    for path in sorted(storage.rglob("*.py")):
        bad = {n for n in _imports(path) if n.split(".")[0] in
               {"asyncio", "aiohttp", "socket", "time", "random", "uvloop"}}
        assert not bad, f"{path.name} imports {bad}"
