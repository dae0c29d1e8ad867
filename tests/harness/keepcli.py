"""`pyimgtools keep` run as a user runs it (tests.conftest.run_cli), its output read back.

keep_cli(image, ...) runs it with --root IMAGE; keep_json(...) returns the
--json --print document; keep_packages(doc) the kept package names. Shared by
the keep tests of every layer (tests/unit/test_keep.py, tests/system/test_keep_ldd.py,
test_loader_malformed.py, ...).
"""

import json

from tests.conftest import run_cli


def keep_cli(image, *args):
    return run_cli("--root", str(image), "keep", *args)


def keep_json(*args):
    proc = run_cli("keep", "--json", "--print", *args)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout), proc


def keep_packages(doc):
    return {p["name"] for p in doc["packages"]}
