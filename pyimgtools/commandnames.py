"""The names of the commands, spelled here once: the sub-commands of the command
line (`pyimgtools NAME`), the "command" of each JSON document, finalize's steps.

Plain data, importable from every layer: the library modules take their NAME
from here, the command line finds each command's adapter with adapter_module().
"""

COMPILE = "compile"
PRUNE = "prune"
KEEP = "keep"
BUILD_DEPS = "build-deps"
SECURITY_UPGRADE = "security-upgrade"
FINALIZE = "finalize"
AUDIT = "audit"

# In the order `pyimgtools --help` lists them.
COMMANDS = (COMPILE, PRUNE, KEEP, BUILD_DEPS, SECURITY_UPGRADE, FINALIZE, AUDIT)


def adapter_module(name):
    """The module holding the command's argparse wiring and rendering:
    'build-deps' -> 'pyimgtools.commands.build_deps'."""
    return "pyimgtools.commands." + name.replace("-", "_")
