"""Where a freshly forked process should run: on another CPU than its parent's, for a while.

Linux starts a forked child on its parent's CPU, and when the parent goes on working the child waits
for it -- for milliseconds, with the other CPUs idle (measured on this project's 2-CPU VM: a parent
busy for 2 ms after ``fork`` delayed its child's first instruction by 2 ms). Where the two are meant
to work at once (the monitor loading the runtime while ``run`` creates the container, a container's
init making its namespaces while the runtime makes its cgroup), the child is given the other CPUs until
the two meet again, then every CPU back.
"""

from __future__ import annotations

import os


def elsewhere() -> tuple[set[int], set[int]] | None:
    """(the CPUs this process may use, those of them it is not running on), or None with only one.

    The CPU it runs on is field 39 of ``/proc/self/stat`` (Python 3.11 has no ``sched_getcpu``).
    """
    try:
        allowed = os.sched_getaffinity(0)
        if len(allowed) < 2:
            return None
        with open("/proc/self/stat", "rb") as f:
            here = int(f.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return None
    if here not in allowed:
        return None
    return allowed, allowed - {here}
