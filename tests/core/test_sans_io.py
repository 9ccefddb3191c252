"""The protocol core is sans-IO: proved statically, from the source, with `ast`.

Starting at each core module, every import is followed transitively through the ipsmtp package
(``from . import x``, ``from ._x import y``, ``import ipsmtp._x``, ``from ipsmtp import x``),
and no module reached may import an I/O, concurrency or framework module. Imports under
``if TYPE_CHECKING:`` are skipped: they never run. The package's ``__init__.py`` is followed
only when a module explicitly imports a name from it, since the facade imports everything.

A runtime check cannot do this: importing ``ipsmtp.protocol._wire`` runs
``ipsmtp/__init__.py`` first,
which loads the whole client.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

FORBIDDEN = frozenset(
    {"socket", "ssl", "select", "selectors", "threading", "asyncio", "blinker", "pydantic"}
)
PROTOCOL = [
    "__init__",
    "_channel",
    "_data",
    "_delivery",
    "_io",
    "_observer",
    "_opening",
    "_session",
    "_transaction",
    "_wire",
]
CORE = [
    *(f"protocol/{name}.py" for name in PROTOCOL),
    "sasl/__init__.py",
    "sasl/_server.py",
]


def package_dir() -> Path:
    spec = importlib.util.find_spec("ipsmtp")  # locates the package without running it
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name of the module imported (from)
    names: tuple[str, ...]  # the names of a `from module import ...`, else ()
    line: int


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_runtime(tree: ast.AST) -> list[ast.AST]:
    """Every node in source order, except those under ``if TYPE_CHECKING:`` (whose ``else``
    still counts)."""
    nodes: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(reversed(node.orelse))
        else:
            stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return nodes


def _is_dynamic_import(node: ast.AST) -> bool:
    """``__import__("x")`` or ``importlib.import_module("x")`` with a literal name."""
    if not isinstance(node, ast.Call) or not node.args:
        return False
    func = node.func
    named = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    first = node.args[0]
    return named and isinstance(first, ast.Constant) and isinstance(first.value, str)


def imports_of(path: Path, root: Path, package: str) -> list[Import]:
    """Every import `path` (a module of `package`, whose source is in `root`) runs."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # The package this module belongs to, against which relative imports resolve.
    own = ".".join([package, *path.relative_to(root).parent.parts])
    found: list[Import] = []
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, (), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = own.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append(Import(module, tuple(a.name for a in node.names), node.lineno))
        elif _is_dynamic_import(node):
            assert isinstance(node, ast.Call) and isinstance(node.args[0], ast.Constant)
            found.append(Import(str(node.args[0].value), (), node.lineno))
    return found


def resolve(module: str, root: Path, package: str) -> Path | None:
    """The source file of `module` when it belongs to `package`, else None."""
    if module != package and not module.startswith(package + "."):
        return None
    rest = module.split(".")[1:]
    candidate = root.joinpath(*rest)
    if rest and candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def targets(imp: Import, root: Path, package: str) -> list[Path]:
    """The package files an import loads. ``from pkg import name`` loads the submodule
    pkg.name when there is one; otherwise the name comes from pkg itself, which is followed.
    (The package facade is not followed merely because a submodule was imported: importing
    any submodule runs it, so that would make every module look like the whole client.)"""
    found: list[Path] = []
    needs_module = not imp.names
    for name in imp.names:
        sub = resolve(f"{imp.module}.{name}", root, package)
        if sub is not None:
            found.append(sub)
        else:
            needs_module = True
    if needs_module:
        target = resolve(imp.module, root, package)
        if target is not None:
            found.append(target)
    return found


def forbidden_chains(start: Path, root: Path, package: str) -> list[str]:
    """Every path from `start` to a forbidden import, as readable chains."""
    problems: list[str] = []
    seen: set[Path] = set()

    def name(path: Path) -> str:
        return f"{package}/{path.relative_to(root).as_posix()}"

    def visit(path: Path, chain: list[str]) -> None:
        if path in seen:
            return
        seen.add(path)
        for imp in imports_of(path, root, package):
            if imp.module.split(".")[0] in FORBIDDEN:
                where = f"{name(path)}:{imp.line} imports {imp.module}"
                problems.append(" -> ".join([*chain, where]))
                continue
            for target in targets(imp, root, package):
                visit(target, [*chain, f"{name(path)}:{imp.line}"])

    visit(start, [])
    return problems


def reachable(start: Path, root: Path, package: str) -> set[str]:
    """The package files `start` loads, transitively, relative to `root`."""
    out: set[str] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        rel = path.relative_to(root).as_posix()
        if rel in out:
            continue
        out.add(rel)
        for imp in imports_of(path, root, package):
            todo += targets(imp, root, package)
    return out


# -- the real package --------------------------------------------------------------------------


@pytest.mark.parametrize("module", CORE)
def test_core_module_is_sans_io(module: str) -> None:
    root = package_dir()
    start = root / module
    assert start.is_file(), start
    problems = forbidden_chains(start, root, "ipsmtp")
    assert not problems, "the sans-IO core imports I/O:\n  " + "\n  ".join(problems)


def test_the_walk_follows_the_package_imports() -> None:
    # Guard against a vacuous pass: the walk must actually reach the modules the core uses.
    root = package_dir()
    assert reachable(root / "protocol/_session.py", root, "ipsmtp") == {
        "protocol/_session.py",
        "protocol/_data.py",
        "_errors.py",
        "_reply.py",
        "protocol/_wire.py",
    }
    sasl = {
        f"sasl/{name}.py"
        for name in (
            "__init__",
            "_base",
            "_digest",
            "_exchange",
            "_gssapi",
            "_oauth",
            "_password",
            "_registry",
            "_saslprep",
            "_scram",
            "_spnego",
        )
    }
    assert reachable(root / "sasl/__init__.py", root, "ipsmtp") == {
        *sasl,
        "_enums.py",
        "_errors.py",
        "_reply.py",
    }
    assert reachable(root / "protocol/_wire.py", root, "ipsmtp") == {
        "protocol/_wire.py",
        "_errors.py",
        "_reply.py",
    }
    assert reachable(root / "protocol/_data.py", root, "ipsmtp") == {"protocol/_data.py"}
    # The opening and delivery flows reach SASL and the value types, and nothing with I/O.
    delivery = reachable(root / "protocol/_delivery.py", root, "ipsmtp")
    assert {"protocol/_channel.py", "protocol/_io.py", "_values.py"} <= delivery
    opening = reachable(root / "protocol/_opening.py", root, "ipsmtp")
    assert {"sasl/__init__.py", "protocol/_session.py", "protocol/_observer.py"} <= opening


def test_every_protocol_module_is_checked() -> None:
    root = package_dir()
    present = {p.stem for p in (root / "protocol").glob("*.py")}
    assert present == set(PROTOCOL)


def test_the_facade_is_not_sans_io() -> None:
    # The check does find I/O where there is some: the client pulls in sockets and blinker.
    root = package_dir()
    problems = forbidden_chains(root / "__init__.py", root, "ipsmtp")
    assert any("imports socket" in p for p in problems)
    assert any("imports blinker" in p for p in problems)


# -- the checker itself, on a throw-away package ------------------------------------------------


def make_package(tmp_path: Path, files: dict[str, str], where: str = "a") -> Path:
    root = tmp_path / where / "pkg"
    root.mkdir(parents=True)
    for filename, source in files.items():
        (root / filename).write_text(source, encoding="utf-8")
    return root


def test_checker_names_the_chain(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "core.py": "from __future__ import annotations\nfrom ._helper import thing\n",
            "_helper.py": "from . import _deep\nthing = 1\n",
            "_deep.py": "import os\n\nimport socket\n",
        },
    )
    problems = forbidden_chains(root / "core.py", root, "pkg")
    assert problems == ["pkg/core.py:2 -> pkg/_helper.py:1 -> pkg/_deep.py:3 imports socket"]


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("import ssl\n", "ssl"),
        ("import asyncio.events\n", "asyncio.events"),
        ("from threading import Lock\n", "threading"),
        ("from selectors import DefaultSelector\n", "selectors"),
        ("import select as s\n", "select"),
        ("from pydantic import BaseModel\n", "pydantic"),
        ("def f():\n    import blinker\n", "blinker"),
        ("import importlib\nimportlib.import_module('socket')\n", "socket"),
        ("__import__('ssl')\n", "ssl"),
        ("try:\n    import ssl\nexcept ImportError:\n    ssl = None\n", "ssl"),
    ],
)
def test_checker_finds_every_import_form(tmp_path: Path, source: str, module: str) -> None:
    root = make_package(tmp_path, {"__init__.py": "", "core.py": source})
    problems = forbidden_chains(root / "core.py", root, "pkg")
    assert len(problems) == 1
    assert problems[0].endswith(f"imports {module}")


def test_checker_follows_absolute_and_facade_imports(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "__init__.py": "from ._net import connect\n",
            "_net.py": "import socket\nconnect = socket.create_connection\n",
            "core.py": "import pkg._plain\nfrom . import connect\n",
            "_plain.py": "from pkg import _net\n",
        },
    )
    problems = forbidden_chains(root / "core.py", root, "pkg")
    assert problems == ["pkg/core.py:1 -> pkg/_plain.py:1 -> pkg/_net.py:1 imports socket"]
    # A name taken from the facade leads through __init__.py.
    facade = make_package(
        tmp_path,
        {
            "__init__.py": "from ._net import connect\n",
            "_net.py": "import socket\n",
            "core.py": "from . import connect\n",
        },
        where="b",
    )
    assert forbidden_chains(facade / "core.py", facade, "pkg") == [
        "pkg/core.py:1 -> pkg/__init__.py:1 -> pkg/_net.py:1 imports socket"
    ]


def test_checker_handles_subpackages(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "core.py": "from .sub import mod\n",
        },
    )
    (root / "sub").mkdir()
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "mod.py").write_text("from .. import _io\n")
    (root / "_io.py").write_text("from selectors import DefaultSelector\n")
    assert forbidden_chains(root / "core.py", root, "pkg") == [
        "pkg/core.py:1 -> pkg/sub/mod.py:1 -> pkg/_io.py:1 imports selectors"
    ]


def test_checker_ignores_type_checking_and_clean_modules(tmp_path: Path) -> None:
    root = make_package(
        tmp_path,
        {
            "__init__.py": "",
            "core.py": (
                "from typing import TYPE_CHECKING\n"
                "import typing\n"
                "import base64, hashlib\n"
                "from . import _other\n"
                "if TYPE_CHECKING:\n    import ssl\n"
                "if typing.TYPE_CHECKING:\n    from socket import socket\n"
            ),
            "_other.py": "from .core import x\nimport collections\n",
        },
    )
    assert forbidden_chains(root / "core.py", root, "pkg") == []
    assert reachable(root / "core.py", root, "pkg") == {"core.py", "_other.py"}
