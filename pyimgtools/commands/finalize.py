"""`pyimgtools finalize`: its options (its own, and each step's as
--STEP-NAME) and rendering over finalize.run_steps."""

import importlib

from pyimgtools import finalize
from pyimgtools.commandnames import adapter_module
from pyimgtools.commands import HelpFormatter, add_dry_run, examples


def _step_adapter(command):
    """The step's adapter module: its add_options() declares the step's options."""
    return importlib.import_module(adapter_module(command))


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
        finalize.NAME, parents=[common], formatter_class=HelpFormatter,
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
        epilog=examples(
            "RUN pyimgtools finalize                       # venv on PATH, or pip into site-packages",
            "RUN pyimgtools finalize --compile-path /app   # and your own code",
            "pyimgtools finalize --dry-run --json"))
    parser.add_argument("--python", metavar="PATH", default=None,
                        help="the target interpreter (default: python3 on PATH, else the one "
                             "running pyimgtools; with --root: a path in the image, default "
                             "its python3 in /usr/local/bin, /usr/bin, /bin)")
    add_dry_run(parser)
    for command, _module, _excluded in finalize.STEPS:
        parser.add_argument("--no-" + command, action="store_true",
                            dest="skip_" + _flag_dest(command),
                            help="skip the %s step" % command)
    for command, _module, excluded in finalize.STEPS:
        group = parser.add_argument_group("%s options (passed through)" % command)
        _step_adapter(command).add_options(_Passthrough(group, command, excluded))
    parser.set_defaults(run=run)


def step_options(command, args):
    """The keyword arguments finalize's --STEP-NAME options give the step's
    function (run_steps adds dry_run and the paths)."""
    prefix = _flag_dest(command) + "__"
    options = {key[len(prefix):]: value for key, value in vars(args).items()
               if key.startswith(prefix) and value is not None}
    return options



def run(args, out, root):
    outcome = finalize.run_steps(
        root=root, out=out, python=args.python, dry_run=bool(getattr(args, "dry_run", False)),
        skip=[c for c, _m, _e in finalize.STEPS if getattr(args, "skip_" + _flag_dest(c), False)],
        options={c: step_options(c, args) for c, _m, _e in finalize.STEPS})
    out.data(finalize.document(outcome))
    finalize.report(outcome, out)
    error = finalize.failure(outcome)
    if error:
        raise error
    return finalize.exit_code(outcome)
