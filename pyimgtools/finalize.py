"""`pyimgtools finalize`: the last RUN step of an image in one command.

Runs `security-upgrade`, then `prune`, then `compile`, in this process (each
step is its module's library function: security.upgrade, prune.prune_trees,
compile.compile_trees, rendered by the module's report() and document()),
each with its defaults, each skippable. Every option of a step is passed
through under the step's name (declared by the step's own add_options):
`--prune-docs`, `--compile-workers 4`, `--security-upgrade-keep-lists`. One
combined summary line, and with `--json` one document holding each step's
own document.

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

from pyimgtools import cli, pytarget
from pyimgtools.errors import EXIT_FAILED, EXIT_OK, PyimgtoolsError
from pyimgtools.report import Output, envelope, with_warnings

NAME = "finalize"

# (command name, module, options of that command that finalize does not pass through)
STEPS = (
    ("security-upgrade", "security", ("check",)),
    ("prune", "prune", ()),
    ("compile", "compile", ("python",)),
)

# Each step module's library function: f(*, root, out, dry_run, **options) -> outcome.
# The module also has add_options(add), report(outcome, out), document(outcome),
# failure(outcome) and exit_code(outcome).
FUNCTIONS = {"security": "upgrade", "prune": "prune_trees", "compile": "compile_trees"}


def _step_module(module_name):
    return importlib.import_module("pyimgtools." + module_name)


def _flag_dest(command):
    return command.replace("-", "_")


class _Passthrough:
    """An `add` for a step's add_options(): declares each of its options on
    finalize's parser as --STEP-NAME (a PATH... positional as a repeatable
    --STEP-path), stored under the destination STEP__NAME."""

    def __init__(self, group, command, excluded):
        self.group, self.command, self.excluded = group, command, excluded

    def __call__(self, *flags, **kwargs):
        prefix = "--" + self.command + "-"
        if flags[0].startswith("-"):
            longs = [f for f in flags if f.startswith("--")]
            # the step's parser names its value as argparse does: the first long option
            dest = kwargs.pop("dest", None) or longs[0][2:].replace("-", "_")
            names = [prefix + f[2:] for f in longs]
        else:  # a positional (PATH...): repeatable --STEP-path; the step's default when not given
            dest = flags[0]
            names = [prefix + "path"]
            kwargs = {"action": "append", "default": None,
                      "metavar": kwargs.get("metavar") or "PATH",
                      "help": "%s; repeatable" % (kwargs.get("help") or "a path for " + self.command)}
        if dest in self.excluded:
            return
        self.group.add_argument(*names, dest="%s__%s" % (_flag_dest(self.command), dest), **kwargs)


def register(subparsers, common):
    parser = subparsers.add_parser(
        NAME, parents=[common], formatter_class=cli.HelpFormatter,
        help="security-upgrade, prune and compile in one step (the last RUN of an image)",
        description=(
            "The last RUN step of an image: security-upgrade, then prune, then compile,\n"
            "each with its defaults, each skippable. The target is the Python this RUN\n"
            "step would run: python3 on PATH (ENV PATH=/opt/venv/bin:$PATH makes the\n"
            "venv the target), or --python. prune runs over the target's prefix (a\n"
            "venv's directory; /usr/local for a Python built there or for Debian's\n"
            "/usr/bin/python3) plus every --prune-path; compile then writes the bytecode\n"
            "of the standard library, the target's site-packages, every pruned tree and\n"
            "every --compile-path (your own code: --compile-path /app).\n"
            "Every other option of a step is accepted here under the step's name\n"
            "(--prune-docs, --compile-workers N, --security-upgrade-keep-lists).\n"
            "A step that fails stops the run; the steps before it stay done.\n"
            "With --dry-run each step plans against the image as it is now (so the\n"
            "compile step still sees the bytecode that prune would delete).\n"
            "Exit codes: 0 done; 1 a step failed (or its own code, e.g. 100)."),
        epilog=cli.examples(
            "RUN pyimgtools finalize                       # venv on PATH, or pip into site-packages",
            "RUN pyimgtools finalize --compile-path /app   # and your own code",
            "pyimgtools finalize --dry-run --json"))
    parser.add_argument("--python", metavar="PATH", default=None,
                        help="the target interpreter (default: python3 on PATH, else the one "
                             "running pyimgtools; with --root: a path in the image, default "
                             "its python3 in /usr/local/bin, /usr/bin, /bin)")
    cli.add_dry_run(parser)
    for command, _module, _excluded in STEPS:
        parser.add_argument("--no-" + command, action="store_true",
                            dest="skip_" + _flag_dest(command),
                            help="skip the %s step" % command)
    for command, module_name, excluded in STEPS:
        group = parser.add_argument_group("%s options (passed through)" % command)
        _step_module(module_name).add_options(_Passthrough(group, command, excluded))
    parser.set_defaults(run=run)


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


def step_options(command, args):
    """The keyword arguments finalize's --STEP-NAME options give the step's function."""
    prefix = _flag_dest(command) + "__"
    options = {key[len(prefix):]: value for key, value in vars(args).items()
               if key.startswith(prefix) and value is not None}
    options["dry_run"] = bool(getattr(args, "dry_run", False))
    return options


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


def _resolve(args, root, out):
    """The target (PyTarget) and the steps' PATHs, once the upgrade is done."""
    python = pytarget.choose(root, args.python)
    target = pytarget.probe(python, root)
    target.executable = python  # as found (a venv's bin/python3 is a symlink)
    pruning = not args.skip_prune
    prune, trees = app_trees(target, root, getattr(args, "prune__paths", None),
                             getattr(args, "compile__paths", None), pruning)
    out.line("target: %s" % target.describe())
    return target, prune, trees


def _target_doc(target, steps):
    if target is None:
        return None
    doc = dataclasses.asdict(target)
    for s in steps:
        result = s.get("result") or {}
        if s["command"] == "prune" and not s["skipped"]:
            doc["pruned"] = result.get("trees")
        if s["command"] == "compile" and not s["skipped"]:
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


def document(*, dry_run, target, steps, not_run, code, failure, seconds):
    """finalize's --json document: each step's own document under steps[].result."""
    ran = [s for s in steps if not s["skipped"]]
    failures = []
    if failure:     # the step that stopped the run is the last one
        failed = ran[-1]["command"]
        failures.append({"item": failed, "error": failure[len(failed) + 2:]})
    own = {"target": _target_doc(target, steps), "steps": steps, "not_run": not_run,
           "exit_code": code, "error": failure}
    return envelope(NAME, dry_run=dry_run, seconds=seconds,
                    counts={"steps": len(ran), "skipped": len(steps) - len(ran)},
                    results=own, failures=failures, **own)


def run(args, out, root):
    started = time.monotonic()
    steps = []
    code = EXIT_OK
    failure = None
    target = None
    for command, module_name, _excluded in STEPS:
        if getattr(args, "skip_" + _flag_dest(command), False):
            steps.append({"command": command, "skipped": True})
            continue
        options = step_options(command, args)
        if command in ("prune", "compile"):
            if target is None:
                target, prune_paths, compile_paths = _resolve(args, root, out)
            if command == "prune":
                options["paths"] = prune_paths
            else:
                options["paths"], options["python"] = compile_paths, target.executable
        step_out = _StepOutput(out)
        out.line("== %s" % command)
        step_started = time.monotonic()
        step_doc = None
        try:
            rc, error, step_doc = _run_step(module_name, options, root, step_out)
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
    elapsed = time.monotonic() - started
    ran = [s for s in steps if not s["skipped"]]
    not_run = [c for c, _m, _e in STEPS if c not in {s["command"] for s in steps}]
    out.data(document(dry_run=getattr(args, "dry_run", False), target=target, steps=steps,
                      not_run=not_run, code=code, failure=failure, seconds=elapsed))
    parts = [_short(s["summary"], s["command"]) if s.get("summary") else s["command"] + " failed"
             for s in ran]
    skipped = [s["command"] for s in steps if s["skipped"]]
    if skipped:
        parts.append("skipped " + ", ".join(skipped))
    if failure:
        parts.append("stopped: " + failure + (", not run: " + ", ".join(not_run) if not_run else ""))
    out.summary("pyimgtools %s: %s; %.1f s in all" % (NAME, "; ".join(parts) or "nothing to do",
                                                      elapsed))
    if failure:
        raise PyimgtoolsError(failure, code)
    return code
