"""Running an image's own interpreter from outside the image (`compile --root R --python P`).

P is an in-image path. Executed directly, the host's kernel would hand it to
the host's loader and libraries (sid's python3.14 needs glibc 2.38 and stops on
bookworm). Instead the image's own loader runs it, the file named by its
PT_INTERP resolved inside the root, with the image's library directories:

    R/lib64/ld-linux-x86-64.so.2 --inhibit-cache --library-path DIRS R/usr/bin/python3.14

DIRS are the directories of the image's ld.so.conf (and its includes), then its
built-in ones (the multiarch directories on Debian), as host paths: what the
image's ld.so.cache holds. --inhibit-cache keeps the host's cache out; a library
the image lacks can still come from the host's built-in directories (ld.so
always searches them last), so a broken image may start here and not at home.
The LD_* variables of this process are not passed on.

The interpreter computes its prefix from where it runs (R/usr), so what it
reports are host paths under R: `to_image` maps them back.
"""

import os

from pyimgtools.errors import RequestError, TargetPythonError
from pyimgtools.report import display_path

# elf, ldcache and loader are imported where an image's interpreter is launched:
# compile imports this module in every run, most of them on the host.

# Where `python3` is looked for in an image when --python is not given: the
# PATH of Debian's and the official images (/usr/local/bin first).
IMAGE_PATH = ("/usr/local/bin", "/usr/bin", "/bin")


class Launch:
    """How to start an in-image interpreter from the host."""

    def __init__(self, argv, env, image_path, loader=None, venv=None):
        self.argv = argv              # the command, up to and including the interpreter
        self.env = env                # None: this process's environment
        self.image_path = image_path  # --python as given (in the image)
        self.loader = loader          # in-image path of the loader running it, or None
        self.venv = venv              # host path of the venv the path belongs to, or None


def default_python(root):
    for d in IMAGE_PATH:
        if root.exists(d + "/python3"):
            return d + "/python3"
    raise RequestError("--root %s: no python3 in the image's %s: give --python (a path in the image)"
                       % (root.path, ", ".join(IMAGE_PATH)))


def _venv_of(root, path):
    """In-image directory of the venv `path` (its bin/python, unresolved) belongs
    to: a pyvenv.cfg beside it or one directory up, as site.py looks."""
    exe_dir = os.path.dirname(path.rstrip("/"))
    for d in (exe_dir, os.path.dirname(exe_dir)):
        if os.path.isfile(root.host(root.realpath(d.rstrip("/") + "/pyvenv.cfg"))):
            return os.path.dirname(exe_dir)
    return None


def library_dirs(root, info):
    """Host paths of the image's library directories for an ELF file like `info`."""
    from pyimgtools import ldcache as _ldcache
    from pyimgtools.loader import Loader
    found = []
    dirs = list(_ldcache.read_conf(root)) + list(Loader(root).default_dirs(info))
    for d in dirs:
        try:
            host = root.host(root.realpath(d))
        except (OSError, ValueError):
            continue
        if os.path.isdir(host) and host not in found and ":" not in host:
            found.append(host)
    return found


def launch(root, python):
    """The Launch of in-image interpreter `python` inside `root` (a non-host Root)."""
    text = os.fsdecode(python)
    if not text.startswith("/"):
        raise RequestError("with --root, --python must be a path in the image: %s" % display_path(text))
    try:
        real = root.realpath(text)
        venv = _venv_of(root, text)
    except OSError as exc:
        raise TargetPythonError("--python %s: %s" % (display_path(text), exc.strerror or exc)) from None
    from pyimgtools import elf as _elf
    host = root.host(real)
    if not os.path.isfile(host):
        raise TargetPythonError("--python %s: no such file in the image %s" % (display_path(text), root.path))
    try:
        info = _elf.read_elf(host)
    except (_elf.ElfError, OSError) as exc:
        with open(host, "rb") as f:
            script = f.read(2) == b"#!"
        what = ("a script, not the interpreter: give the binary it runs" if script
                else "not an ELF executable (%s)" % exc)
        raise TargetPythonError("--python %s: %s" % (display_path(text), what)) from None
    env = {k: v for k, v in os.environ.items() if not k.startswith("LD_")}
    venv_host = root.host(root.realpath(venv)) if venv else None
    if info.interp is None:  # static: the host kernel runs it as the image would
        return Launch([host], env, text, venv=venv_host)
    interp = root.realpath(info.interp)
    interp_host = root.host(interp)
    if not os.path.isfile(interp_host):
        raise TargetPythonError("--python %s: its loader %s is not in the image"
                                % (display_path(text), info.interp))
    argv = [interp_host, "--inhibit-cache", "--library-path", ":".join(library_dirs(root, info)), host]
    return Launch(argv, env, text, loader=info.interp, venv=venv_host)


def to_image(root, path):
    """In-image path of a host path the in-image interpreter reported, or None
    when it lies outside the root (the interpreter may report its realpath)."""
    if path is None:
        return None
    path = os.path.normpath(os.fsdecode(path))
    for prefix in dict.fromkeys((root.path, os.path.realpath(root.path))):
        prefix = prefix.rstrip("/")
        if path == prefix:
            return "/"
        if path.startswith(prefix + "/"):
            return path[len(prefix):]
    return None
