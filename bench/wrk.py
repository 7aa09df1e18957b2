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
from typing import Sequence

MARK = "BENCHJSON "
LUA_OPEN, LUA_CLOSE = "[===[", "]===]"


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


@dataclass
class Paired:
    """Rounds of an endpoint and of its baseline, run alternately in the same minutes."""

    endpoint: list[WrkResult] = field(default_factory=list)
    baseline: list[WrkResult] = field(default_factory=list)

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
    def baseline_rps(self) -> float:
        return statistics.median(r.rps for r in self.baseline)

    @property
    def ratio(self) -> float:
        """The median over rounds of endpoint req/s ÷ the baseline's req/s of the same round."""
        return statistics.median(self.ratios)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.endpoint + self.baseline)

    @property
    def ratios(self) -> list[float]:
        """Each round's endpoint req/s ÷ its baseline's, in round order."""
        return [e.rps / b.rps if b.rps else 0.0 for e, b in zip(self.endpoint, self.baseline)]

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
        """Each round's req/s, endpoint and baseline: `E 2,070 / B 1,420; ...`."""
        return "; ".join(f"E {e.rps:,.0f} / B {b.rps:,.0f}"
                         for e, b in zip(self.endpoint, self.baseline))


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


def run(base_url: str, calls: Sequence[HttpCall], seconds: float, connections: int,
        threads: int = 1) -> WrkResult:
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


def alternate(base_url: str, endpoint: Sequence[HttpCall], baseline: Sequence[HttpCall],
              rounds: int, seconds: float, connections: int) -> Paired:
    """Warm both up, then `rounds` pairs, the order flipping each round (B E, E B, B E, ...)."""
    run(base_url, endpoint, 1, connections)
    run(base_url, baseline, 1, connections)
    paired = Paired()
    for number in range(rounds):
        order = ("baseline", "endpoint") if number % 2 == 0 else ("endpoint", "baseline")
        for which in order:
            calls = baseline if which == "baseline" else endpoint
            getattr(paired, which).append(run(base_url, calls, seconds, connections))
    return paired
