"""finalize's target probe on sid's Python 3.14 and 3.15 (in a venv, where 3.14
changed what -S leaves in sys.prefix): the trees it reports are the venv's own
site.getsitepackages(), prefix and os.__file__ directory."""

import json
import os

import pytest

from tests.harness.sidroot import pyimgtools_in, sid  # noqa: F401 (a fixture)

# Debian's site.getsitepackages() in a venv also names dist-packages directories
# under the venv that never exist: the ones that exist are compared.
OWN = ("import json, os, site, sys; print(json.dumps({'site': [p for p in "
       "site.getsitepackages() if os.path.isdir(p)], "
       "'prefix': sys.prefix, 'stdlib': os.path.dirname(os.__file__)}))")


@pytest.mark.parametrize("minor", ["3.14", "3.15"])
def test_the_target_of_a_sid_venv(sid, minor):  # noqa: F811
    python = "/usr/bin/python" + minor
    venv = "/w/venv-" + minor
    sid.run([python, "-m", "venv", "--without-pip", venv])
    want = json.loads(sid.run([venv + "/bin/python", "-c", OWN]).stdout)
    doc = json.loads(pyimgtools_in(sid, python, "--json", "finalize", "--python",
                                   venv + "/bin/python", "--no-security-upgrade",
                                   "--dry-run").stdout)
    target = doc["target"]
    assert target["venv"] is True and target["prefix"] == want["prefix"] == venv
    assert target["stdlib"] == want["stdlib"]
    assert [p for p in target["site_packages"] if os.path.isdir(sid.host(p))] == want["site"]
    assert target["pruned"] == [venv]
