"""How much of the machine this process may use: the CPUs a container's cgroup allows, not the host's.

`multiprocessing.cpu_count()` answers the host's CPUs: a replica limited to 1 CPU on a 16-CPU host would start
17 workers, each able to need 64 MiB for one Argon2 check, in a 512 MB container.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def available_cpus(cgroup: Path = CGROUP) -> int:
    """Whole CPUs this process may use: the cgroup's CPU quota (v2 cpu.max, or v1 cfs quota and period), else the
    CPUs it is allowed to run on; at least one."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota(cgroup)
    if quota is not None:
        allowed = min(allowed, math.ceil(quota))
    return max(allowed, 1)


def _cgroup_quota(cgroup: Path) -> float | None:
    try:
        v2 = (cgroup / "cpu.max").read_text().split()
    except OSError:
        v2 = []
    if len(v2) == 2 and v2[0] != "max":
        return int(v2[0]) / int(v2[1])
    try:
        quota = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
