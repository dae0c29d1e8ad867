"""How many CPUs this process may use: its affinity mask, capped by a cgroup CPU quota.

`docker run --cpus 1.5` (or a Kubernetes CPU limit) leaves every CPU in the
affinity mask but sets a CFS quota: cgroup v2 `cpu.max` ("150000 100000"), or
cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`. Running more busy workers
than the quota allows only adds throttling, so the quota, rounded up, caps the
count. Limits set on ancestor cgroups apply too; the smallest one wins.
"""

import math
import os


def affinity_cpus():
    """CPUs in this process's affinity mask (os.cpu_count() where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_cpus(proc="/proc/self"):
    """The default worker count: affinity, capped by the cgroup CPU quota."""
    n = affinity_cpus()
    quota = cgroup_cpu_quota(proc)
    if quota is not None:
        n = min(n, max(1, int(math.ceil(quota - 1e-9))))
    return n


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def parse_mountinfo(text):
    """[(mount root, mount point, fstype, super options)] from /proc/self/mountinfo."""
    mounts = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        mounts.append((root, point, tail[0], tail[2]))
    return mounts


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_proc_cgroup(text):
    """{controller: path} from /proc/self/cgroup; the v2 hierarchy is under key ""."""
    found = {}
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, path = parts
        if not controllers:
            found[""] = path
        for c in controllers.split(","):
            if c:
                found[c] = path
    return found


def _cgroup_dirs(mount_root, mount_point, path):
    """The cgroup's directory and its ancestors inside the mount, innermost first."""
    if mount_root != "/" and (path == mount_root or path.startswith(mount_root.rstrip("/") + "/")):
        path = path[len(mount_root.rstrip("/")):]
    elif mount_root != "/":
        path = "/"  # a namespaced mount: the process's cgroup is the mount's root
    parts = [p for p in path.split("/") if p and p != ".."]
    dirs = []
    while True:
        dirs.append(os.path.join(mount_point, *parts) if parts else mount_point)
        if not parts:
            return dirs
        parts.pop()


def _v2_limit(text):
    fields = (text or "").split()
    if len(fields) >= 1 and fields[0] != "max":
        try:
            quota = int(fields[0])
            period = int(fields[1]) if len(fields) > 1 else 100000
        except ValueError:
            return None
        if quota > 0 and period > 0:
            return quota / period
    return None


def _v1_limit(quota_text, period_text):
    try:
        quota, period = int((quota_text or "").strip()), int((period_text or "").strip())
    except ValueError:
        return None
    if quota > 0 and period > 0:
        return quota / period
    return None


def cgroup_cpu_quota(proc="/proc/self", read=_read):
    """CPUs allowed by the cgroup CPU quota (a float, 1.5 for --cpus 1.5), or None."""
    cgroups = parse_proc_cgroup(read(os.path.join(proc, "cgroup")))
    mounts = parse_mountinfo(read(os.path.join(proc, "mountinfo")))
    limits = []
    for root, point, fstype, options in mounts:
        if fstype == "cgroup2" and "" in cgroups:
            for d in _cgroup_dirs(root, point, cgroups[""]):
                limit = _v2_limit(read(os.path.join(d, "cpu.max")))
                if limit is not None:
                    limits.append(limit)
        elif fstype == "cgroup" and "cpu" in options.split(",") and "cpu" in cgroups:
            for d in _cgroup_dirs(root, point, cgroups["cpu"]):
                limit = _v1_limit(read(os.path.join(d, "cpu.cfs_quota_us")),
                                  read(os.path.join(d, "cpu.cfs_period_us")))
                if limit is not None:
                    limits.append(limit)
    return min(limits) if limits else None
