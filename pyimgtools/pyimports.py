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


_KEYWORD = re.compile(rb"(?<![\w.])(?:from|import)(?![\w])")
_COMMENT = re.compile(rb"#[^\n]*")
_STARTS = (b"\nfrom ", b"\nfrom\t", b"\nfrom\\", b"\nimport ", b"\nimport\t", b"\nimport\\")
_WORD_CACHE = {}


def import_statements(source, words):
    """Cheap split of the import statements of `source` (bytes) that may name one of `words`.

    Returns (statements, indented), lists of (lineno, text) to be parsed alone:
    `statements` are the module-level-looking ones (starting in column 0,
    continuation lines included) that mention a word; `indented` the other lines
    where a word follows an import keyword (inside a block: if one of them
    imports a test package, only a parse of the whole file tells whether it
    runs at import time; text that does not parse alone also needs that).
    Conservative: a mention inside a string or comment may count, an import
    never goes unnoticed. The scanning is done by regular expressions (C).
    """
    spans = {}
    other = {}
    for word in words:
        if word not in source:
            continue
        patterns = _WORD_CACHE.get(word)
        if patterns is None:
            w = rb"(?<![\w])" + re.escape(word) + rb"(?![\w])"
            # (each starts with a literal, which the regex engine finds fast)
            patterns = _WORD_CACHE[word] = (
                # the word after a keyword, on its line or on backslash-continued lines
                re.compile(rb"from(?<![\w.]from)(?![\w])(?:[^\n\\]|\\\r?\n|\\)*?" + w),
                re.compile(rb"import(?<![\w.]import)(?![\w])(?:[^\n\\]|\\\r?\n|\\)*?" + w),
                # the word in a parenthesised name list
                re.compile(rb"import(?<![\w.]import)[ \t]*\([^)]*?" + w),
            )
        for pattern in patterns:
            for m in pattern.finditer(source):
                span = _column0_statement(source, m.end() - len(word))
                if span is None:
                    start = _indented_start(source, m.start())
                    if start is not None:
                        other[start] = _statement_end(source, start)
                else:
                    spans[span[0]] = span[1]
    result = [(source.count(b"\n", 0, start) + 1, source[start:end]) for start, end in sorted(spans.items())]
    indented = [(source.count(b"\n", 0, start) + 1, source[start:end])
                for start, end in sorted(other.items())]
    return result, indented


def _line_end(source, pos):
    end = source.find(b"\n", pos)
    return len(source) if end < 0 else end


def _column0_statement(source, pos):
    """(start, end) of the column-0 from/import statement that contains `pos`, or None."""
    start = max(source.rfind(s, 0, pos) for s in _STARTS) + 1
    if start == 0 and not _KEYWORD.match(source, 0):
        return None
    end = _statement_end(source, start)
    if start <= pos < end:
        return start, end
    return None


def _indented_start(source, keyword):
    """Start of the statement holding the import keyword at `keyword`, or None if it
    cannot be one: a statement starts a line or follows `;` or `:` (`try: import x`)."""
    line_start = source.rfind(b"\n", 0, keyword) + 1
    head = source[line_start:keyword]
    cut = max(head.rfind(b";"), head.rfind(b":")) + 1
    rest = head[cut:].strip(b" \t")
    if rest == b"" or (rest.startswith(b"from") and _KEYWORD.match(rest)):
        return line_start + cut + (len(head) - cut - len(head[cut:].lstrip(b" \t")))
    return None


def _statement_end(source, start):
    """End of the statement starting at `start`: its line, a parenthesised list, continuations."""
    end = _line_end(source, start)
    first = _COMMENT.sub(b"", source[start:end])
    if b"(" in first and b")" not in first:
        close = source.find(b")", end)
        end = len(source) if close < 0 else _line_end(source, close)
    while source[:end].endswith((b"\\", b"\\\r")) and end < len(source):
        end = _line_end(source, end + 1)
    return end


def statement_imports(lineno, text, package):
    """Imports of one statement cut out of a file (import_statements); SyntaxError if it is not one."""
    import ast
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = ast.parse(text)
    found = module_level_imports(tree, package)
    for imp in found:
        imp.lineno += lineno - 1
    return found


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
