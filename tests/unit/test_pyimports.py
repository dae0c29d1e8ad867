"""Module-level imports found statically, and the cheap pre-filter never missing one."""

import pytest

from pyimgtools.pyimports import (
    import_statements, imports_module, parse_imports, resolve_relative,
    statement_imports)


def modules(source, package="pkg"):
    return {i.module for i in parse_imports(source.encode(), package)}


@pytest.mark.parametrize("package,module,level,expected", [
    ("pkg.sub", "x", 0, "x"),
    ("pkg.sub", "x", 1, "pkg.sub.x"),
    ("pkg.sub", "", 1, "pkg.sub"),
    ("pkg.sub", "x.y", 2, "pkg.x.y"),
    ("pkg.sub", "", 2, "pkg"),
    ("pkg.sub", "", 3, None),     # beyond the top-level package: ImportError in Python
    ("pkg", "x", 2, None),
    ("", "x", 1, None),           # a top-level module cannot import relatively
])
def test_resolve_relative(package, module, level, expected):
    assert resolve_relative(package, module, level) == expected


def test_what_counts_as_module_level():
    src = '''
import a.b.c
from .tests import _natype
from . import testing as t
from ..up import thing
try:
    import in_try
except ImportError:
    from fallback import x
else:
    import in_else
finally:
    import in_finally
with ctx():
    import in_with
for i in ():
    import in_for
while False:
    import in_while
class C:
    import in_class
    def method(self):
        import in_method
def f():
    import in_function
    from pkg import tests
async def g():
    import in_async
lam = lambda: __import__("dynamic")
if __name__ == "__main__":
    import in_main
    from idlelib.idle_test.htest import run
else:
    import in_main_else
if "__main__" == __name__:
    import in_main_reversed
if __name__ != "__main__":
    import in_not_main
'''
    found = modules(src, "pkg.sub")
    assert found == {
        "a", "a.b", "a.b.c", "pkg", "pkg.sub", "pkg.sub.tests", "pkg.sub.tests._natype",
        "pkg.sub.testing", "pkg.up", "pkg.up.thing", "in_try", "fallback", "fallback.x", "in_else",
        "in_finally", "in_with", "in_for", "in_while", "in_class", "in_main_else", "in_not_main"}


def test_match_statement_bodies_count():
    src = "match x:\n    case 1:\n        import in_case\n"
    try:
        compile(src, "m", "exec")
    except SyntaxError:
        pytest.skip("match needs Python 3.10")
    assert "in_case" in modules(src)


def test_syntax_errors_raise():
    with pytest.raises(SyntaxError):
        parse_imports(b"import (\n", "pkg")


def test_imports_module_matches_the_package_and_its_submodules():
    imports = parse_imports(b"from numpy._core.tests._natype import pd_NA\nimport numpy.testing\n", "numpy.testing._private")
    assert imports_module(imports, "numpy._core.tests").lineno == 1
    assert imports_module(imports, "numpy._core.test") is None
    assert imports_module(imports, "numpy.tests") is None
    assert imports_module(parse_imports(b"import testsuite\n", ""), "tests") is None
    # a package under a namespace package is named from its first regular package
    ns = parse_imports(b"from google.cloud.storage.tests import x\n", "")
    assert imports_module(ns, "storage.tests") is not None


IMPORT_FORMS = [
    "import pkg.tests",
    "import pkg.tests.helper as h",
    "import os, pkg.tests",
    "from pkg import tests",
    "from pkg import (\n    other,\n    tests,\n)",
    "from pkg import other, \\\n    tests",
    "from pkg \\\n    .tests import x",
    "from . import tests",
    "from .tests import x",
    "from .tests.sub import x",
    "from pkg.tests import x",
    "x = 1; import pkg.tests",
    "try: from . import tests\nexcept ImportError: pass",
    "if True:\n    from pkg import (other,\n        tests as t)",
    "from pkg import (  # comment\n    tests)",
    "from\tpkg\timport\ttests",
]


@pytest.mark.parametrize("source", [
    b"import os\n# run the tests with pytest\n",
    b"def tests():\n    pass\n",
    b"import testing\nfrom pkg import testsuite\n",
])
def test_statement_split_skips_files_that_cannot_import_it(source):
    assert import_statements(source, [b"tests"]) == ([], [])


def test_stdlib_imports_of_test_packages_are_not_module_level():
    """idlelib and multiprocessing import their test packages only inside functions or
    under the __main__ guard (the issue's parity requirement), as in this sample."""
    src = b'''
import sys
def _cleanup_tests():
    from test import support
if __name__ == '__main__':
    from unittest import main
    main('idlelib.idle_test.test_calltip', verbosity=2)
    from idlelib.idle_test.htest import run
'''
    imports = parse_imports(src, "idlelib")
    assert imports_module(imports, "idlelib.idle_test") is None
    assert imports_module(imports, "test") is None


@pytest.mark.parametrize("form", IMPORT_FORMS)
def test_statement_split_finds_every_import_of_the_word(form):
    """Either a column-0 statement parsed alone yields the import, or the file is flagged
    for a whole parse: an import of the word is never lost."""
    data = form.encode()
    assert imports_module(parse_imports(data, "pkg"), "pkg.tests") is not None  # the fixture is right
    statements, indented = import_statements(data, [b"tests"])
    found = []
    for lineno, text in statements + indented:
        try:
            found.extend(statement_imports(lineno, text, "pkg"))
        except SyntaxError:
            return  # a whole-file parse follows
    assert imports_module(found, "pkg.tests") is not None


def test_statement_split_keeps_line_numbers_and_skips_indented_mentions():
    src = b"import os\n\n# tests\nfrom pkg import (\n    a,\n    tests,\n)\ndef f():\n    return 'tests'\n"
    statements, indented = import_statements(src, [b"tests"])
    assert indented == []
    assert [(n, t.split(b"\n")[0]) for n, t in statements] == [(4, b"from pkg import (")]
    imps = statement_imports(*statements[0], "pkg")
    assert imports_module(imps, "pkg.tests").lineno == 4
    _, indented = import_statements(b"def f():\n    from . import tests\n", [b"tests"])
    assert indented == [(2, b"from . import tests")]


def test_statement_split_ignores_prose_but_not_statements_after_colon_or_semicolon():
    src = (b'def f():\n    """Combine p-values from independent tests.\n\n    Data from the tests/data directory."""\n'
           b"    raise ValueError from tests\n")
    assert import_statements(src, [b"tests"]) == ([], [])
    src = b"def f():\n    try: from . import tests\n    except ImportError: x = 1; import tests\n"
    assert import_statements(src, [b"tests"])[1] == [(2, b"from . import tests"), (3, b"import tests")]
    src = b"class C:\n    from pkg import (\n        tests)\n"
    assert import_statements(src, [b"tests"])[1] == [(2, b"from pkg import (\n        tests)")]
