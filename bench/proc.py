"""CPU seconds of processes from /proc, for the benchmarks that meter what a process spent."""
from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (fields[0] is proc(5)'s field 3,
    the state), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu(fields: list[str]) -> float:
    """utime + stime + cutime + cstime (proc(5) fields 14-17): the process's CPU with that of
    the children it has waited for, so a child's work is not lost when it exits."""
    return sum(int(tick) for tick in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds of a process (and its reaped children) so far; 0 once it is gone."""
    fields = _stat(pid)
    return 0.0 if fields is None else _cpu(fields)


def session_cpu(session: int) -> dict[int, float]:
    """cpu_seconds of every process in session `session` (proc(5) field 6), by pid."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields is not None and int(fields[3]) == session:
            found[int(entry.name)] = _cpu(fields)
    return found
