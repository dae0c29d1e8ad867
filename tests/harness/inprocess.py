"""`pyimgtools ARGV` run in the test's own process (pyimgtools.cli.main), output captured.

For tests that need the CLI's real argument handling and exit code without a
subprocess (the compile workers are real processes all the same), e.g. to
patch a module attribute first. Shared by tests/unit/test_compile*.py and
tests/integration/test_compile_race.py.
"""

import contextlib
import io
import subprocess

from pyimgtools.cli import main as cli_main


def in_process(*argv):
    """pyimgtools ARGV in this process (the workers are real processes all the same)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli_main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
