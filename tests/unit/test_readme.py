"""The README for a Dockerfile author: every example in it is run by a test.

- each ```dockerfile block is made of lines of one Dockerfile under examples/
  that an integration test builds (the file is named in tests/);
- each `pyimgtools …` line of a ```sh block parses with the real command line,
  each `scripts/…` it names exists and is executable (the pip line is
  tests/system/test_readme_pip.py);
- its length, its test command, every exit status and its links to docs/.
"""

import os
import re
import shlex

import pytest

from pyimgtools import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = open(os.path.join(REPO, "README.md")).read()
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


def blocks(kind):
    return [body for lang, body in BLOCK.findall(README) if lang == kind]


def _tests_text():
    text = []
    for top, _dirs, files in os.walk(os.path.join(REPO, "tests")):
        text += [open(os.path.join(top, f)).read() for f in files if f.endswith(".py")]
    return "\n".join(text)


def _built_dockerfiles():
    """Dockerfiles under examples/ that a test builds (named in tests/)."""
    tests = _tests_text()
    found = {}
    for top, _dirs, files in os.walk(os.path.join(REPO, "examples")):
        for name in files:
            if name.startswith("Dockerfile") and name in tests:
                found[os.path.relpath(os.path.join(top, name), REPO)] = \
                    open(os.path.join(top, name)).read()
    return found


def _lines(text):
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


@pytest.mark.parametrize("index", range(len(blocks("dockerfile"))))
def test_each_dockerfile_block_comes_from_a_built_example(index):
    block = _lines(blocks("dockerfile")[index])
    built = _built_dockerfiles()
    homes = [path for path, text in built.items() if set(block) <= set(_lines(text))]
    assert homes, "README dockerfile block %d is in no built example:\n%s" % (index, "\n".join(block))


def test_the_flow_dockerfiles_are_in_the_readme_whole():
    for name in ("Dockerfile.system", "Dockerfile.venv", "Dockerfile.uv"):
        text = open(os.path.join(REPO, "examples", "app", name)).read()
        assert "```dockerfile\n" + text.rstrip("\n") + "\n```" in README, name


def _sh_commands():
    for body in blocks("sh"):
        for line in body.splitlines():
            command = line.split("#", 1)[0].strip() if not line.strip().startswith("#") else ""
            if command:
                yield command


def test_pyimgtools_lines_parse_and_scripts_exist():
    seen = 0
    for command in _sh_commands():
        argv = shlex.split(command)
        if argv[0] == "sudo":
            argv = argv[1:]
        if argv[0] == "pyimgtools":
            cli.build_parser().parse_args(argv[1:])  # SystemExit(2) on a bad line
            seen += 1
        elif argv[0].startswith("scripts/"):
            path = os.path.join(REPO, argv[0])
            assert os.access(path, os.X_OK), argv[0]
            seen += 1
    assert seen >= 3


def test_length_test_command_exit_codes_and_links():
    assert len(README.splitlines()) <= 250
    assert "`scripts/test` is the test command" in README
    table = README[README.index("## Exit codes"):]
    for code in ("0", "1", "2", "100", "130", "143"):
        assert re.search(r"^\| %s \|" % code, table, re.M), code
    for link in re.findall(r"\]\((docs/[^)]+)\)", README):
        if link != "docs/official-slim.md":  # written by the official-slim work
            assert os.path.exists(os.path.join(REPO, link)), link


def test_first_screen_says_how_pyimgtools_gets_into_the_image():
    first = "\n".join(README.splitlines()[:40])
    for way in ("RUN --mount=type=bind,source=pyimgtools.pyz", "COPY pyimgtools.pyz", "pip install"):
        assert way in first, way
