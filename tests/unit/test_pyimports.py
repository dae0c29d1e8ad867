"""Module-level imports found statically, and the cheap pre-filter never missing one."""

import pytest

from pyimgtools.pyimports import imports_module, mentions_import_of, parse_imports, resolve_relative


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


@pytest.mark.parametrize("form", IMPORT_FORMS)
def test_prefilter_never_misses_an_import_of_the_word(form):
    imports = parse_imports(form.encode(), "pkg")
    assert imports_module(imports, "pkg.tests") is not None  # ast says it imports pkg.tests ...
    assert mentions_import_of(form.encode(), b"tests")       # ... so the filter must say yes


@pytest.mark.parametrize("source", [
    b"import os\n# run the tests with pytest\n",
    b"def tests():\n    pass\n",
    b"import testing\nfrom pkg import testsuite\n",
])
def test_prefilter_skips_files_that_cannot_import_it(source):
    assert not mentions_import_of(source, b"tests")


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
