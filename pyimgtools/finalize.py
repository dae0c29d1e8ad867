"""`pyimgtools finalize`: the last RUN step of an image in one command.

Runs `security-upgrade`, then `prune`, then `compile`, in this process (each
step is its module's library function: security.upgrade, prune.prune_trees,
compile.compile_trees, rendered by the module's report() and document()),
each with its defaults, each skippable. Every option of a step is passed
through under the step's name (the step's adapter declares its options, and
pyimgtools.commands.finalize declares each again as --STEP-NAME):
`--prune-docs`, `--compile-workers 4`, `--security-upgrade-keep-lists`; it
reaches run_steps() as a keyword argument of that step. One combined
summary line, and with `--json` one document holding each step's own document.

The app layer is covered by default. The target is the Python the RUN step
would run (`python3` on PATH, or --python; pyimgtools.pytarget): prune runs
over its prefix (a venv's directory, `/usr/local` for a Python built there)
plus every --prune-path; compile then covers the standard library, the
target's site-packages, every tree prune walked and every --compile-path. So
each .pyc prune deletes is written again for whatever source is left, and the
ones compile could not write (sourceless bytecode: a legacy foo.pyc with no
foo.py) prune keeps: a finished tree never has fewer usable .pyc files than it had.

The order matters: the upgrade may install Python files, prune deletes stale
bytecode (and tests), compile then writes the bytecode of what is left.
"""

import dataclasses
import importlib
import os
import time
from typing import Optional

from pyimgtools import commandnames, pytarget
from pyimgtools.commandnames import COMPILE, PRUNE
from pyimgtools.errors import EXIT_FAILED, EXIT_OK, PyimgtoolsError
from pyimgtools.report import Output, envelope, with_warnings

NAME = commandnames.FINALIZE

# (command name, module, options of that command that finalize does not pass
# through: it always applies the updates, and it chooses compile's python)
STEPS = (
    (commandnames.SECURITY_UPGRADE, "security", ("check",)),
    (PRUNE, "prune", ()),
    (COMPILE, "compile", ("python",)),
)

# Each step module's library function: f(*, root, out, dry_run, **options) -> outcome.
# The module also has report(outcome, out), document(outcome), failure(outcome)
# and exit_code(outcome).
FUNCTIONS = {"security": "upgrade", "prune": "prune_trees", "compile": "compile_trees"}


def _step_module(module_name):
    return importlib.import_module("pyimgtools." + module_name)


class _StepOutput(Output):
    """A step's output: its lines go to finalize's log as they come (and no
    progress line, as with --json); its summary line is kept for finalize's own."""

    def __init__(self, parent):
        super().__init__(json_mode=False, quiet=parent.quiet, verbose=parent.verbose,
                         stdout=parent._log, stderr=parent._log)
        self.summaries = []
        self.parent = parent

    def warn(self, text):
        super().warn(text)
        self.parent.warnings.append(text)     # finalize's envelope lists every step's

    def summary(self, text):
        self.summaries.append(text)

    @property
    def is_tty(self):
        return False


def _short(summary, command):
    """'pyimgtools prune: removed 3 files in 0.1 s' -> 'prune removed 3 files in 0.1 s'."""
    head = "pyimgtools %s:" % command
    if summary.startswith(head):
        return command + summary[len(head):]
    return command + ": " + summary


def _isdir(root, path):
    return os.path.isdir(path if root.is_host else root.host(path))


def app_trees(target, root, prune_paths=(), compile_paths=(), pruning=True):
    """(prune PATHs, compile PATHs) for `target`: the defaults that exist in the
    image, then the user's own. Compile covers what prune walks."""
    prune = []
    if pruning:
        prune = [p for p in [target.prune_root()] if _isdir(root, p)]
        prune += [p for p in prune_paths or () if p not in prune]
    std = [target.stdlib] + ([target.platstdlib] if target.platstdlib != target.stdlib else [])
    trees = [p for p in std + list(target.site_packages or ()) if p and _isdir(root, p)]
    trees += prune + list(compile_paths or ())
    return prune, list(dict.fromkeys(trees))


def _resolve(root, out, python, prune_paths, compile_paths, pruning):
    """The target (PyTarget) and the steps' PATHs, once the upgrade is done."""
    python = pytarget.choose(root, python)
    target = pytarget.probe(python, root)
    target.executable = python  # as found (a venv's bin/python3 is a symlink)
    prune, trees = app_trees(target, root, prune_paths, compile_paths, pruning)
    out.line("target: %s" % target.describe())
    return target, prune, trees


def _target_doc(target, steps):
    if target is None:
        return None
    doc = dataclasses.asdict(target)
    for s in steps:
        result = s.get("result") or {}
        if s["command"] == PRUNE and not s["skipped"]:
            doc["pruned"] = result.get("trees")
        if s["command"] == COMPILE and not s["skipped"]:
            doc["compiled"] = result.get("trees")
    return doc


def _run_step(module_name, options, root, step_out):
    """(exit code, failure text or None, the step's JSON document or None)."""
    module = _step_module(module_name)
    outcome = getattr(module, FUNCTIONS[module_name])(root=root, out=step_out, **options)
    module.report(outcome, step_out)
    doc = with_warnings(module.document(outcome), step_out.warnings)
    error = module.failure(outcome)
    if error is not None:
        return error.exit_code, str(error), doc
    return module.exit_code(outcome), None, doc


@dataclasses.dataclass
class Outcome:
    """What run_steps did: one dict per step in STEPS order that was reached
    (command, skipped; for a step that ran: exit_code, summary, seconds and
    result, the step's own JSON document), the target (None when neither prune
    nor compile ran), the steps not reached, the exit status and the failure."""
    steps: list
    target: Optional[pytarget.PyTarget]
    not_run: list
    code: int
    error: Optional[str]
    dry_run: bool
    seconds: float


def run_steps(*, root, out, python=None, skip=(), options=None, dry_run=False):
    """Run the steps of STEPS not named in `skip`, in order, each step's
    function called with its keyword arguments options[command] plus dry_run
    (prune's and compile's paths are the target's trees plus the ones given,
    compile's python is the target): an Outcome. `python` chooses the target
    (pytarget.choose). A step that fails stops the rest. The steps' own lines
    go to `out` as they come; report() prints the combined summary line."""
    options = options or {}
    started = time.monotonic()
    steps = []
    code = EXIT_OK
    failure = None
    target = None
    for command, module_name, _excluded in STEPS:
        if command in skip:
            steps.append({"command": command, "skipped": True})
            continue
        kwargs = dict(options.get(command) or {}, dry_run=bool(dry_run))
        if command in (PRUNE, COMPILE):
            if target is None:
                target, prune_paths, compile_paths = _resolve(
                    root, out, python, (options.get(PRUNE) or {}).get("paths"),
                    (options.get(COMPILE) or {}).get("paths"), PRUNE not in skip)
            if command == PRUNE:
                kwargs["paths"] = prune_paths
            else:
                kwargs["paths"], kwargs["python"] = compile_paths, target.executable
        step_out = _StepOutput(out)
        out.line("== %s" % command)
        step_started = time.monotonic()
        step_doc = None
        try:
            rc, error, step_doc = _run_step(module_name, kwargs, root, step_out)
            if error is not None:
                failure = "%s: %s" % (command, error)
        except PyimgtoolsError as exc:
            rc, failure = exc.exit_code, "%s: %s" % (command, exc)
        except OSError as exc:
            where = " (%s)" % exc.filename if getattr(exc, "filename", None) else ""
            rc, failure = EXIT_FAILED, "%s: %s%s" % (command, exc.strerror or exc, where)
        for text in step_out.summaries:
            out.line(text)
        steps.append({
            "command": command, "skipped": False, "exit_code": rc,
            "summary": step_out.summaries[-1] if step_out.summaries else None,
            "seconds": round(time.monotonic() - step_started, 3),
            "result": step_doc,
        })
        if rc != EXIT_OK:
            code = rc if rc != 0 else EXIT_FAILED
            if failure is None:
                failure = "%s exited %d" % (command, rc)
            break
    not_run = [c for c, _m, _e in STEPS if c not in {s["command"] for s in steps}]
    return Outcome(steps, target, not_run, code, failure, bool(dry_run),
                   time.monotonic() - started)


def document(outcome):
    """The --json document (the envelope, docs/json.md): finalize's own fields
    and each step's document under steps[].result."""
    ran = [s for s in outcome.steps if not s["skipped"]]
    failures = []
    if outcome.error:     # the step that stopped the run is the last one
        failed = ran[-1]["command"]
        failures.append({"item": failed, "error": outcome.error[len(failed) + 2:]})
    own = {"target": _target_doc(outcome.target, outcome.steps), "steps": outcome.steps,
           "not_run": outcome.not_run, "exit_code": outcome.code, "error": outcome.error}
    return envelope(NAME, dry_run=outcome.dry_run, seconds=outcome.seconds,
                    counts={"steps": len(ran), "skipped": len(outcome.steps) - len(ran)},
                    results=own, failures=failures, **own)


def report(outcome, out):
    """The combined summary line (the steps' own lines were printed as they came)."""
    ran = [s for s in outcome.steps if not s["skipped"]]
    parts = [_short(s["summary"], s["command"]) if s.get("summary") else s["command"] + " failed"
             for s in ran]
    skipped = [s["command"] for s in outcome.steps if s["skipped"]]
    if skipped:
        parts.append("skipped " + ", ".join(skipped))
    if outcome.error:
        parts.append("stopped: " + outcome.error + (", not run: " + ", ".join(outcome.not_run)
                                                    if outcome.not_run else ""))
    out.summary("pyimgtools %s: %s; %.1f s in all" % (NAME, "; ".join(parts) or "nothing to do",
                                                      outcome.seconds))


def failure(outcome):
    """The PyimgtoolsError the command ends with (the first failing step's), or None."""
    if outcome.error:
        return PyimgtoolsError(outcome.error, outcome.code)
    return None


def exit_code(outcome):
    """The exit status when failure() is None: 0."""
    return outcome.code
