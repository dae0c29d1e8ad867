"""Every audit check, registered in the order the report lists them (see
registry.py for what a check is, context.py for what they share). The checks
are grouped by theme, one module each; importing this module registers them."""

from pyimgtools.audit import checks_python  # noqa: F401 - registers two-pythons
from pyimgtools.audit import checks_bytecode  # noqa: F401 - stdlib-bytecode, site-bytecode
from pyimgtools.audit import checks_packages  # noqa: F401 - leftovers, build-tools, broken-metadata
from pyimgtools.audit import checks_environment  # noqa: F401 - ca-certificates, locale
from pyimgtools.audit import checks_security  # noqa: F401 - security-updates
from pyimgtools.audit import checks_libraries  # noqa: F401 - unresolved-libs, dead-weight
from pyimgtools.audit import checks_layers  # noqa: F401 - layer-waste, layer-efficiency (IMAGE only)
from pyimgtools.audit.checks_bytecode import pyc_status  # noqa: F401 - used by tests and finalize's proofs
from pyimgtools.audit.checks_packages import is_build_tool  # noqa: F401
from pyimgtools.audit.context import Context, find_pythons  # noqa: F401
from pyimgtools.audit.registry import CHECKS, Skip, known_ids  # noqa: F401
