"""The test suite's own layout: helpers live in tests/harness/, test modules hold tests.

A test module (tests/unit, tests/system, tests/integration) imports from the
package under test, tests.harness and tests.conftest only, never from another
test module: a helper shared by two tests has one home in tests/harness/, where
its docstring says what it is the independent reference for. Imports are read
with ast, those inside functions too (a late import is still an import).
"""

import ast
import importlib.util
import os

from tests.conftest import REPO

TESTS = os.path.join(REPO, "tests")
LAYERS = ("unit", "system", "integration")
ALLOWED = ("tests.harness", "tests.conftest")
PACKAGES = ("tests",) + tuple("tests." + layer for layer in LAYERS)


def _module_name(path):
    rel = os.path.relpath(path, REPO)[:-len(".py")].split(os.sep)
    if rel[-1] == "__init__":
        rel.pop()
    return ".".join(rel)


def imported_modules(source, name, is_package=False):
    """Every module name `source` (the module `name`) imports, relative imports resolved;
    `from X import a` imports X, or X.a when X is `tests` or a layer's package (a is
    a module there)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = name if is_package else name.rpartition(".")[0]
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            if base in PACKAGES:
                found.update(base + "." + a.name for a in node.names if a.name != "*")
            else:
                found.add(base)
    return found


def forbidden_imports(source, name, is_package=False):
    """The test-suite modules `source` imports that are neither tests.harness nor tests.conftest."""
    bad = set()
    for mod in imported_modules(source, name, is_package):
        if mod == "tests" or not mod.startswith("tests."):
            continue
        if any(mod == a or mod.startswith(a + ".") for a in ALLOWED):
            continue
        bad.add(mod)
    return sorted(bad)


def _suite_modules():
    for dirpath, dirnames, filenames in os.walk(TESTS):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield os.path.join(dirpath, f)


def test_the_check_sees_imports_of_test_modules():
    assert forbidden_imports("from tests.unit.test_elf import build_elf\n", "tests.unit.test_x") == \
        ["tests.unit.test_elf"]
    assert forbidden_imports("def f():\n    import tests.system.test_keep_ldd\n", "tests.unit.test_x") == \
        ["tests.system.test_keep_ldd"]
    assert forbidden_imports("from .test_dpkg import make_db\n", "tests.unit.test_x") == \
        ["tests.unit.test_dpkg"]
    assert forbidden_imports("from tests.integration import test_e2e_support as e2e\n",
                             "tests.integration.test_x") == \
        ["tests.integration.test_e2e_support"]
    assert forbidden_imports("from tests import unit\n", "tests.system.test_x") == ["tests.unit"]
    assert forbidden_imports("from tests.harness.elfbuild import build_elf\nfrom tests import conftest\n"
                             "from tests.conftest import run_cli\nimport pyimgtools.elf\n",
                             "tests.unit.test_x") == []


def test_no_test_module_imports_another_test_module():
    offenders = {}
    for path in _suite_modules():
        with open(path, "rb") as f:
            source = f.read()
        bad = forbidden_imports(source, _module_name(path), path.endswith("__init__.py"))
        if bad:
            offenders[os.path.relpath(path, REPO)] = bad
    assert offenders == {}, "import these from tests/harness/ instead: %r" % offenders


def test_every_module_of_a_test_layer_holds_tests():
    """A helper module under a layer directory (a test_*_support.py) belongs in tests/harness/."""
    empty = []
    for layer in LAYERS:
        top = os.path.join(TESTS, layer)
        for name in sorted(os.listdir(top)):
            if not name.endswith(".py") or name == "__init__.py":
                continue
            with open(os.path.join(top, name), "rb") as f:
                tree = ast.parse(f.read())
            if not any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name.lower().startswith("test")
                       for n in tree.body):
                empty.append("tests/%s/%s" % (layer, name))
    assert empty == []


def test_every_harness_module_says_what_it_is():
    missing = []
    for name in sorted(os.listdir(os.path.join(TESTS, "harness"))):
        if name.endswith(".py") and name != "__init__.py":
            with open(os.path.join(TESTS, "harness", name), "rb") as f:
                if not ast.get_docstring(ast.parse(f.read())):
                    missing.append(name)
    assert missing == []
