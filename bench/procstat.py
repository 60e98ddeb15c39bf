"""CPU time and memory of server-side process trees, read from /proc.

Dovecot and perdition fork a process per session and reap it when the session
ends: a finished child's CPU time moves into its parent's cutime/cstime. So
the CPU time of a tree is the root's own and reaped-children time plus the same
for every live descendant; the difference of two samples is what the tree
spent in between, whichever processes came and went (a child that exits
between the samples is counted once: first live, then in its parent).

Memory: RSS counts shared pages once per process, which overstates a tree of
forked processes. USS (private pages: Private_Clean + Private_Dirty in
smaps_rollup) counts what only that process maps, so the growth of a tree's USS
sum is the memory that new connections really took; unlike PSS it does not
move when unrelated processes map or unmap the same libraries.
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 onward), or
    None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(b")") + 2:].split()


def _children_map():
    """{ppid: [pid, ...]} for every process on the machine (one /proc walk)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        if fields is None:
            continue
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def tree(pids):
    """The given PIDs and all their live descendants."""
    kids = _children_map()
    out, todo, seen = [], list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def cpu_seconds(pids):
    """utime+stime+cutime+cstime summed over the trees rooted at pids."""
    ticks = 0
    for pid in tree(pids):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # Fields 14-17 of stat: utime stime cutime cstime (index 11-14 here).
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLK_TCK


def rss_bytes(pid):
    """Resident set of one process."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def uss_bytes(pids):
    """Private (unique) memory summed over the trees rooted at pids."""
    total = 0
    for pid in tree(pids):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith(("Private_Clean:", "Private_Dirty:")):
                        total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


def process_count(pids):
    return len(tree(pids))


def self_children_cpu():
    """CPU time of this process's reaped children (the load generator runs)."""
    t = os.times()
    return t.children_user + t.children_system
