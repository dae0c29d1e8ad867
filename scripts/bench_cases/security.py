"""security-upgrade --check: the CI gate, against the shell one-liner people write.

Read-only, on this machine's own dpkg database and apt lists (Debian 12):
`apt list --upgradable | grep -- -security` versus
`pyimgtools security-upgrade --check --no-update`. Applying updates is not
benchmarked here (it needs a fresh chroot per run and is dominated by
downloads); the integration tests time it.
"""

from _frame import Variant, pyimgtools_argv

DESCRIPTION = "list pending security updates from this machine's apt lists (read-only)"


def variants(work):
    return [
        Variant("apt list --upgradable | grep -security",
                lambda run_dir: ["sh", "-c", "apt list --upgradable 2>/dev/null | grep -- -security"],
                ok_returncodes=(0, 1)),
        Variant("pyimgtools security-upgrade --check",
                lambda run_dir: pyimgtools_argv("security-upgrade", "--check", "--no-update"),
                ok_returncodes=(0, 100)),
    ]
