"""pyimgtools: small, tested, stdlib-only commands for building Python container images."""

import sys

# pyimgtools runs inside images it inspects and changes: importing its own
# dependencies must not write .pyc files into the image's standard library
# (they would be timestamp pycs nobody asked for, and audit would see them).
sys.dont_write_bytecode = True

__version__ = "0.1.0"
