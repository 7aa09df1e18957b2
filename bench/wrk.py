"""Drive gunicorn with wrk (a C load generator, its own process) and read back its figures.

Each run gets a generated Lua script holding every request it cycles through (method, path,
headers, body: e.g. one token per user), pre-formatted once per wrk thread, and a `done` hook
that prints one JSON line with the request count, duration, latency percentiles and errors.
"""
from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Sequence

MARK = "BENCHJSON "
LUA_OPEN, LUA_CLOSE = "[===[", "]===]"
THREADS, CONNECTIONS = 2, 32  # the outside check: wrk -t2 -c32


@dataclass(frozen=True)
class HttpCall:
    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # responses ≥ 400 plus socket errors and timeouts

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Side:
    """One side of a paired row: a server and the requests wrk cycles through against it."""

    base_url: str
    calls: Sequence[HttpCall]


@dataclass(frozen=True)
class Load:
    """How a row loads its servers: `rounds` pairs of wrk runs of `seconds` each."""

    rounds: int
    seconds: float
    connections: int = CONNECTIONS
    threads: int = THREADS


@dataclass
class Paired:
    """Rounds of an endpoint and of the bare Flask app (its denominator), run alternately in the
    same minutes; every ratio is endpoint ÷ bare of the same round."""

    endpoint: list[WrkResult] = field(default_factory=list)
    bare: list[WrkResult] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.endpoint)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.endpoint)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.endpoint)

    @property
    def bare_rps(self) -> float:
        return statistics.median(r.rps for r in self.bare)

    @property
    def ratio(self) -> float:
        """The median over rounds of endpoint req/s ÷ the bare app's req/s of the same round."""
        return statistics.median(self.ratios)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.endpoint + self.bare)

    @property
    def ratios(self) -> list[float]:
        """Each round's endpoint req/s ÷ the bare app's, in round order."""
        return [e.rps / b.rps if b.rps else 0.0 for e, b in zip(self.endpoint, self.bare)]

    @property
    def ratio_quartiles(self) -> tuple[float, float]:
        """The lower and upper quartile of the rounds' ratios: the middle half of the rounds lies
        between them, whatever a few rounds disturbed by the machine (a stolen core) did."""
        ratios = self.ratios
        if len(ratios) < 2:
            return (ratios[0], ratios[0]) if ratios else (math.nan, math.nan)
        q1, _median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
        return q1, q3

    def rounds_text(self) -> str:
        """Each round's req/s, endpoint and bare app: `E 2,070 / B 5,420; ...`."""
        return "; ".join(f"E {e.rps:,.0f} / B {b.rps:,.0f}"
                         for e, b in zip(self.endpoint, self.bare))


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed: `apt-get install -y wrk` (make bench does it)")
    return found


def _lua_string(text: str) -> str:
    if LUA_CLOSE in text:
        raise ValueError("request text holds the Lua long-string terminator")
    return LUA_OPEN + text + LUA_CLOSE


def lua_script(calls: Sequence[HttpCall]) -> str:
    """A wrk script cycling through `calls` and printing one JSON line when done."""
    specs = []
    for call in calls:
        headers = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}"
                            for k, v in call.headers.items())
        body = _lua_string(call.body) if call.body is not None else "nil"
        specs.append(f"  {{{_lua_string(call.method)}, {_lua_string(call.path)}, "
                     f"{{{headers}}}, {body}}},")
    return "\n".join([
        "local specs = {", *specs, "}",
        "local formatted = {}",
        "local next_index = 0",
        "init = function(args)",
        "  for i, s in ipairs(specs) do formatted[i] = wrk.format(s[1], s[2], s[3], s[4]) end",
        "end",
        "request = function()",
        "  next_index = next_index % #formatted + 1",
        "  return formatted[next_index]",
        "end",
        "done = function(summary, latency, _requests)",
        "  local e = summary.errors",
        f"  io.write(string.format('{MARK}" + '{"requests": %d, "duration_us": %d, '
        '"p50_us": %d, "p99_us": %d, "errors": %d}\\n\', summary.requests, summary.duration, '
        'latency:percentile(50), latency:percentile(99), '
        'e.connect + e.read + e.write + e.status + e.timeout))',
        "end",
    ]) + "\n"


def run(base_url: str, calls: Sequence[HttpCall], seconds: float,
        connections: int = CONNECTIONS, threads: int = THREADS) -> WrkResult:
    """One wrk run of `seconds` against `base_url`, cycling through `calls`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="tally-wrk-") as script:
        script.write(lua_script(calls))
        script.flush()
        command = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
                   "--timeout", "10s", "-s", script.name, base_url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(MARK)), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[:500]}")
    data = json.loads(line[len(MARK):])
    return WrkResult(requests=data["requests"], seconds=data["duration_us"] / 1e6,
                     p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
                     errors=data["errors"])


def alternate(endpoint: Side, bare: Side, load: Load,
              runner: Callable[..., WrkResult] = run) -> Paired:
    """Warm both up, then `load.rounds` pairs, the order flipping each round (B E, E B, ...)."""
    def once(side: Side, seconds: float) -> WrkResult:
        return runner(side.base_url, side.calls, seconds, load.connections, load.threads)

    once(endpoint, 1)
    once(bare, 1)
    paired = Paired()
    for number in range(load.rounds):
        order = ("bare", "endpoint") if number % 2 == 0 else ("endpoint", "bare")
        for which in order:
            side = bare if which == "bare" else endpoint
            getattr(paired, which).append(once(side, load.seconds))
    return paired
