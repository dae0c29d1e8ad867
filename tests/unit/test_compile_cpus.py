"""pyimgtools.cpus: the affinity mask capped by a cgroup v1/v2 CPU quota (fake /proc and cgroup trees)."""

import os

import pytest

from pyimgtools import cpus


def make(tmp_path, cgroup, mountinfo, files):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text(mountinfo.format(cg=str(tmp_path / "cg")))
    for rel, text in files.items():
        path = tmp_path / "cg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(proc)


V2_MOUNT = "30 23 0:26 / {cg} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"


def test_v2_quota_of_an_ancestor_applies(tmp_path):
    proc = make(tmp_path, "0::/kubepods/pod1/ctr\n", V2_MOUNT, {
        "kubepods/pod1/ctr/cpu.max": "max 100000\n",
        "kubepods/pod1/cpu.max": "150000 100000\n",
        "kubepods/cpu.max": "400000 100000\n",
    })
    assert cpus.cgroup_cpu_quota(proc) == pytest.approx(1.5)


def test_v2_namespaced_container_like_docker_cpus_half(tmp_path):
    # docker run --cpus 0.5 with a private cgroup namespace: the container's
    # cgroup is the root of the mount and /proc/self/cgroup says "0::/".
    proc = make(tmp_path, "0::/\n", V2_MOUNT, {"cpu.max": "50000 100000\n"})
    assert cpus.cgroup_cpu_quota(proc) == pytest.approx(0.5)
    assert cpus.available_cpus(proc) == 1


def test_v2_without_limit(tmp_path):
    proc = make(tmp_path, "0::/user.slice\n", V2_MOUNT, {"user.slice/cpu.max": "max 100000\n"})
    assert cpus.cgroup_cpu_quota(proc) is None
    assert cpus.available_cpus(proc) == cpus.affinity_cpus()


def test_v1_cfs_quota_with_a_mount_rooted_at_the_container(tmp_path):
    mountinfo = ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
                 "32 31 0:29 /docker/abc {cg} rw - cgroup cgroup rw,cpu,cpuacct\n")
    proc = make(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n", mountinfo, {
        "cpu.cfs_quota_us": "250000\n", "cpu.cfs_period_us": "100000\n"})
    assert cpus.cgroup_cpu_quota(proc) == pytest.approx(2.5)


def test_v1_unlimited_quota_is_minus_one(tmp_path):
    mountinfo = "32 31 0:29 / {cg} rw - cgroup cgroup rw,cpu\n"
    proc = make(tmp_path, "1:cpu:/\n", mountinfo, {
        "cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"})
    assert cpus.cgroup_cpu_quota(proc) is None


def test_no_cgroup_files_at_all(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    assert cpus.cgroup_cpu_quota(str(proc)) is None
    assert cpus.available_cpus(str(proc)) >= 1


def test_quota_rounds_up_and_never_exceeds_the_affinity_mask(tmp_path, monkeypatch):
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 4)
    proc = make(tmp_path, "0::/\n", V2_MOUNT, {"cpu.max": "150000 100000\n"})
    assert cpus.available_cpus(proc) == 2
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: 1)
    assert cpus.available_cpus(proc) == 1


def test_affinity_matches_the_kernel_mask():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no sched_getaffinity")
    with open("/proc/self/status") as f:
        allowed = [line for line in f if line.startswith("Cpus_allowed_list:")][0].split()[1]
    count = 0
    for part in allowed.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    assert cpus.affinity_cpus() == count


def test_mountinfo_escapes_are_decoded():
    mounts = cpus.parse_mountinfo("30 23 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n")
    assert mounts == [("/", "/sys/fs/my cgroup", "cgroup2", "rw")]
