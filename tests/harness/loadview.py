"""How tests read a loader.LoadTree the way ldd prints it."""


def ldd_view(tree):
    """ldd's view of a LoadTree: each object once, under the name that first loaded it."""
    seen = set()
    result = {}
    for dep in tree.dependencies:
        if dep.via in ("interp", "loaded"):
            continue
        if dep.path is not None and dep.path in seen:
            continue
        seen.add(dep.path)
        result.setdefault(dep.name, dep.path)
    return result
