"""Audit checks about the run-time environment: CA certificates for ssl, a UTF-8 locale."""

import re

from pyimgtools.audit.model import Finding
from pyimgtools.audit.registry import Skip, check
from pyimgtools.report import display_path


# -- missing runtime pieces ---------------------------------------------------------

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _ssl_modules(ctx):
    found = []
    for inst in ctx.pythons:
        dyn = inst.stdlib + "/lib-dynload"
        for name in ctx.listdir(dyn):
            if name.startswith("_ssl.") and name.endswith(".so"):
                found.append(dyn + "/" + name)
    return found


@check("ca-certificates", "no-ca-certificates")
def check_ca_certificates(ctx):
    """An ssl module without a CA bundle (and no ca-certificates package): every TLS
    verification fails at run time."""
    ssl = _ssl_modules(ctx)
    if not ssl:
        return []
    if ctx.root.exists(CA_BUNDLE):
        return []
    installed = {p.name for p in ctx.installed().values()}
    if "ca-certificates" in installed:
        return []
    evidence = ["Python's ssl module is present: %s" % ", ".join(display_path(p) for p in ssl),
                "%s does not exist" % CA_BUNDLE]
    if ctx.dpkg is not None:
        evidence.append("package ca-certificates is not installed")
    return [Finding(
        "no-ca-certificates", "warn",
        "no CA certificates: HTTPS from Python (pip, urllib, requests without certifi) fails to verify",
        "apt-get install -y --no-install-recommends ca-certificates",
        evidence=evidence, paths=ssl)]


_UTF8 = re.compile(r"utf-?8", re.IGNORECASE)


@check("locale", "locale-not-utf8")
def check_locale(ctx):
    """The image's environment does not select a UTF-8 locale (LC_ALL, LC_CTYPE,
    LANG, in glibc's order); skipped when the environment cannot be seen."""
    if ctx.env is None:
        raise Skip("environment not visible: %s" % ctx.env_source)
    env = ctx.env
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        if env.get(var):
            name, value = var, env[var]
            break
    else:
        name, value = None, None
    if value is not None and _UTF8.search(value):
        return []
    if name is None:
        what = "LANG (and LC_ALL, LC_CTYPE) unset: the C locale"
    else:
        what = "%s=%s" % (name, value)
    evidence = ["%s (from %s)" % (what, ctx.env_source),
                "Python 3.7+ coerces the C locale to UTF-8 (PEP 538); other programs and "
                "Python 3.6 or older see ASCII"]
    if env.get("PYTHONUTF8") == "1":
        evidence.append("PYTHONUTF8=1 is set (Python's UTF-8 mode)")
    return [Finding("locale-not-utf8", "warn", "the default locale is not UTF-8: " + what,
                    "ENV LANG C.UTF-8", evidence=evidence, data={"variable": name, "value": value})]
