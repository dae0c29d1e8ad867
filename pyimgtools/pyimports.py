"""Static scan of the module-level imports of a Python source file (never executed).

Only what runs when the module is imported counts: statements at module level,
also inside `if`/`try`/`with`/loops and class bodies, but not inside functions or
lambdas, and not under `if __name__ == "__main__":` (its `else:` branch counts).
Relative imports are resolved against the file's package.
"""

import re


class Import:
    """One imported module name (absolute, dotted) and the line that imports it."""

    __slots__ = ("module", "lineno")

    def __init__(self, module, lineno):
        self.module = module
        self.lineno = lineno

    def __repr__(self):
        return "Import(%r, line %d)" % (self.module, self.lineno)

    def __eq__(self, other):
        return isinstance(other, Import) and (self.module, self.lineno) == (other.module, other.lineno)

    def __hash__(self):
        return hash((self.module, self.lineno))


def resolve_relative(package, module, level):
    """`from .{level} module import …` inside package `package` -> absolute name, or None.

    None when the relative import climbs above the top-level package (Python
    raises ImportError there, so nothing is imported).
    """
    if level == 0:
        return module
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None
    base = parts[:len(parts) - (level - 1)]
    if module:
        base = base + module.split(".")
    return ".".join(base)


def _is_main_guard(test):
    """`__name__ == "__main__"` (either order)."""
    import ast
    if not isinstance(test, ast.Compare) or len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if _const_str(s) == "__main__"]
    return len(names) == 1 and len(consts) == 1


def _const_str(node):
    import ast
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def module_level_imports(tree, package):
    """Absolute module names imported when a module of `package` with this AST is imported.

    `import a.b.c` yields a, a.b, a.b.c; `from a.b import c, d` yields a, a.b and
    a.b.c, a.b.d (each may be a submodule).
    """
    import ast
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    found = []
    stack = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        if isinstance(node, functions):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                _with_parents(alias.name, node.lineno, found)
            continue
        if isinstance(node, ast.ImportFrom):
            base = resolve_relative(package, node.module or "", node.level or 0)
            if base is None:
                continue
            _with_parents(base, node.lineno, found)
            for alias in node.names:
                if alias.name != "*":
                    found.append(Import(base + "." + alias.name, node.lineno))
            continue
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            stack.extend(reversed(node.orelse))
            continue
        if isinstance(node, ast.stmt) or isinstance(node, (ast.excepthandler,)) or \
                type(node).__name__ == "match_case":
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field, None)
                if children:
                    stack.extend(reversed(children))
    return found


def _with_parents(name, lineno, found):
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        found.append(Import(".".join(parts[:i]), lineno))


def parse_imports(source, package, filename="<unknown>"):
    """Module-level imports of `source` (bytes); raises SyntaxError/ValueError when unparsable."""
    import ast
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning/DeprecationWarning of the scanned file
        tree = ast.parse(source, filename=filename)
    return module_level_imports(tree, package)


def mentions_import_of(source, word):
    """Cheap conservative test: could an import statement in `source` name `word`?

    False means no import statement can mention `word` as a name component
    (so parsing is unnecessary); True may be a false alarm (a comment, a string).
    Covers one-line statements, parenthesised name lists and backslash continuations.
    """
    if word not in source:
        return False
    return any(p.search(source) for p in _patterns(word))


_PATTERN_CACHE = {}


def _patterns(word):
    pats = _PATTERN_CACHE.get(word)
    if pats is None:
        w = re.escape(word)
        pats = (
            # from/import and the word on one physical line
            re.compile(rb"(?:from|import)[^\n]*(?<![\w])" + w + rb"(?![\w])"),
            # from x import ( ..., word, ... ) over several lines
            re.compile(rb"import[ \t\\\r\n]*\([^)]*(?<![\w])" + w + rb"(?![\w])"),
            # a continuation line after a backslash
            re.compile(rb"\\\r?\n[^\n]*(?<![\w])" + w + rb"(?![\w])"),
        )
        _PATTERN_CACHE[word] = pats
    return pats


def imports_module(imports, target):
    """The first Import in `imports` that imports `target` or one of its submodules, else None.

    A name also matches when `target` appears in it as a run of whole components
    (`google.cloud.storage.tests` for target `storage.tests`), because a package
    found under a namespace package is named from its first regular package.
    """
    dotted = "." + target + "."
    for imp in imports:
        name = imp.module
        if name == target or name.startswith(target + ".") or dotted in "." + name + ".":
            return imp
    return None
