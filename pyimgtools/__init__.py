"""pyimgtools: small, tested, stdlib-only commands for building Python container images."""

__version__ = "0.1.0"
