"""The import graph of pyimgtools/ has no cycle, and only the command-line
layer (pyimgtools/commands/ and cli.py) imports argparse. Imports are read
with ast, the ones inside functions too (a cycle broken only by a late import
is still one), and so are importlib.import_module("x") / __import__("x") calls
with a literal name."""

import ast
import os

import pyimgtools

PACKAGE = os.path.dirname(pyimgtools.__file__)


def _module_name(path, package_dir):
    rel = os.path.relpath(path, os.path.dirname(package_dir))[:-len(".py")].split(os.sep)
    if rel[-1] == "__init__":
        rel.pop()
    return ".".join(rel)


def _sources(package_dir):
    paths = []
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames.sort()
        paths += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
    return {_module_name(p, package_dir): p for p in paths}


def _literal_import(node):
    """The module named by importlib.import_module("x") or __import__("x"), else None."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    if isinstance(func, ast.Name) and func.id in ("__import__", "import_module"):
        return node.args[0].value
    if isinstance(func, ast.Attribute) and func.attr == "import_module":
        return node.args[0].value
    return None


def imports_of(name, path, modules):
    """Every dotted name the module `name` (source at `path`) imports, as
    absolute names; `from pkg import mod` gives pkg.mod when that is one of `modules`."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    is_pkg = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".")
                parts = parts[:len(parts) - node.level + (1 if is_pkg else 0)]
                base = ".".join(parts + ([base] if base else []))
            found.update(base + "." + a.name if base + "." + a.name in modules else base
                         for a in node.names)
        else:
            literal = _literal_import(node)
            if literal:
                found.add(literal)
    return found


def import_graph(package_dir=PACKAGE):
    """{module: set of pyimgtools modules it imports} for every .py under package_dir."""
    modules = _sources(package_dir)
    graph = {}
    for name, path in modules.items():
        deps = set()
        for t in imports_of(name, path, modules):
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t != name and t != "pyimgtools":
                deps.add(t)
        graph[name] = deps
    return graph


# The command-line layer (the entry points and the command adapters): the only
# modules that may import argparse, or import one another.
CLI_LAYER = ("pyimgtools.__main__", "pyimgtools.cli", "pyimgtools.commands")


def _in_cli_layer(name):
    return any(name == top or name.startswith(top + ".") for top in CLI_LAYER)


def argparse_importers(package_dir=PACKAGE):
    """The modules outside the command-line layer that import argparse."""
    modules = _sources(package_dir)
    return sorted(name for name, path in modules.items()
                  if not _in_cli_layer(name)
                  and any(t == "argparse" or t.startswith("argparse.")
                          for t in imports_of(name, path, modules)))


def find_cycle(graph):
    """One cycle as a list of modules [a, b, ..., a], or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_is_read_from_the_sources():
    graph = import_graph()
    assert "pyimgtools.fs" in graph["pyimgtools.dpkg"]
    assert "pyimgtools.treewalk" in graph["pyimgtools.fs"]


def test_pyimgtools_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_argparse_check_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "pyimgtools"
    (pkg / "commands").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import argparse\n")
    (pkg / "commands" / "__init__.py").write_text("import argparse\n")
    (pkg / "commands" / "prune.py").write_text("from argparse import Namespace\n")
    (pkg / "late.py").write_text("def f():\n    import argparse\n")
    (pkg / "fromimp.py").write_text("from argparse import ArgumentTypeError\n")
    (pkg / "dynamic.py").write_text("import importlib\nimportlib.import_module('argparse')\n")
    (pkg / "clean.py").write_text("import os\n")
    assert argparse_importers(str(pkg)) == ["pyimgtools.dynamic", "pyimgtools.fromimp",
                                            "pyimgtools.late"]


def test_only_the_command_line_layer_imports_argparse():
    assert argparse_importers() == []


def test_library_modules_do_not_import_the_command_line_layer():
    # else argparse comes in with them (and the layers are upside down)
    wrong = {name: sorted(d for d in deps if _in_cli_layer(d))
             for name, deps in import_graph().items() if not _in_cli_layer(name)}
    assert {name: deps for name, deps in wrong.items() if deps} == {}
