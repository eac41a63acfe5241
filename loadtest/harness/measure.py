"""Processes and measurements: start pinned processes and stop every one of them, read
CPU time and RSS from /proc, gate runs on a quiet machine, and run wrk with a Lua script
that rotates through the workspaces (each with its owner's token)."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")


class Procs:
    """Every process the suite starts, by PID; `stop_all` ends them (never by name)."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = {}

    def start(self, name, argv, cpu=None, env=None, stdout=None):
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + list(argv)
        log = open(os.path.join(self.logdir, f"{name}.log"), "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(argv, stdout=stdout or log, stderr=log, env=full_env,
                             start_new_session=True)
        self.procs[name] = p
        return p

    def stop(self, name, sig=signal.SIGTERM, wait=10):
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(wait)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def stop_all(self):
        for name in list(self.procs):
            self.stop(name)

    def check_alive(self):
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"processes ended unexpectedly: {dead} (logs in {self.logdir})")


def pids_of(pid):
    """The process and its descendants (nginx master + workers)."""
    out = [pid]
    try:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except OSError:
        kids = []
    for k in kids:
        out.extend(pids_of(int(k)))
    return out


def cpu_split(pids):
    """User and kernel CPU ticks of the processes so far (utime, stime)."""
    user = kernel = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            kernel += int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return user, kernel


def cpu_ticks(pids):
    return sum(cpu_split(pids))


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def busy_fraction(seconds=1.0):
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def rustc_running():
    r = subprocess.run(["pgrep", "-x", "rustc"], capture_output=True)
    return r.returncode == 0


def quiet_gate(max_wait=60, busy_limit=0.10):
    """Waits (bounded) for no rustc and a machine under `busy_limit`; returns what it saw."""
    deadline = time.time() + max_wait
    while True:
        busy = busy_fraction(1.0)
        rustc = rustc_running()
        if (busy < busy_limit and not rustc) or time.time() > deadline:
            return {"busy": round(busy, 3), "rustc": rustc, "quiet": busy < busy_limit and not rustc}


def http_get(url, headers=None, timeout=5):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def origin_accepts(status_url):
    """Accepted connections so far at the origin nginx (its stub_status)."""
    _, body = http_get(status_url)
    nums = body.decode().splitlines()[2].split()
    return int(nums[0]), int(nums[2])  # accepts, requests


LUA = r"""
-- Rotates through the workspaces in order, each request with its owner's token.
local paths = {%(paths)s}
local tokens = {%(tokens)s}
local n = #paths
local i = 0
local reqs = {}
-- Rendered in init: only then does wrk know the Host header to put in each request.
init = function(args)
  for k = 1, n do
    local h = {}
    if tokens[k] and tokens[k] ~= "" then h["Authorization"] = "Bearer " .. tokens[k] end
    reqs[k] = wrk.format("GET", paths[k], h)
  end
end
request = function()
  i = i %% n + 1
  return reqs[i]
end
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"connect_errors":%%d,"read_errors":%%d,"write_errors":%%d,"status_errors":%%d,"timeouts":%%d,"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
"""


def write_lua(path, ids, tokens=None):
    paths = ",".join(f'"/route/{i}/some/path?x=1"' for i in ids)
    toks = ",".join(f'"{t}"' for t in (tokens or [""] * len(ids)))
    with open(path, "w") as f:
        f.write(LUA % {"paths": paths, "tokens": toks})


def wrk(url, lua, seconds, connections=64, cpu=0, rusage=False):
    """One wrk run; with `rusage`, also wrk's own CPU and how often it slept (GNU time)."""
    timed = ["/usr/bin/time", "-f", "WRKRUSAGE %w %c %U %S"] if rusage else []
    argv = ["taskset", "-c", str(cpu)] + timed + ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
                                                  "--timeout", "5s", "-s", lua, url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise RuntimeError(f"wrk printed no summary: {out.stdout}\n{out.stderr}")
    r = json.loads(m.group(1))
    u = re.search(r"WRKRUSAGE (\d+) (\d+) ([\d.]+) ([\d.]+)", out.stderr)
    if u:
        r["wrk_rusage"] = {"voluntary_ctxt_switches": int(u.group(1)), "nonvoluntary_ctxt_switches": int(u.group(2)),
                           "user_s": float(u.group(3)), "kernel_s": float(u.group(4))}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return r


def measured_run(url, lua, pids, seconds, warmup, status_url=None, gate=True):
    """Warm-up, then one measured wrk run with the proxy's CPU, RSS and new upstream
    connections over exactly that run. The quiet-machine gate sits between the two so the
    control plane's work caused by the warm-up (activity reports) is done before the run;
    the origin keeps idle connections longer than the gate waits, so the warmed pool
    survives it."""
    if warmup:
        wrk(url, lua, warmup)
    gate = quiet_gate(max_wait=30, busy_limit=0.15) if gate else {"busy": -1, "rustc": False, "quiet": None}
    acc0 = origin_accepts(status_url) if status_url else (0, 0)
    u0, k0 = cpu_split(pids)
    r = wrk(url, lua, seconds)
    u1, k1 = cpu_split(pids)
    acc1 = origin_accepts(status_url) if status_url else (0, 0)
    c0, c1 = u0 + k0, u1 + k1
    per_req = 1e6 / TICK / max(1, r["requests"])
    r["cpu_us_per_req"] = (c1 - c0) * per_req
    # The split tells our own work (user) from the kernel's (sockets, wake-ups) per request.
    r["user_us_per_req"] = (u1 - u0) * per_req
    r["kernel_us_per_req"] = (k1 - k0) * per_req
    r["util"] = (c1 - c0) / TICK / (r["duration_us"] / 1e6)
    r["rss_kib"] = rss_kib(pids)
    r["new_upstream_per_1k"] = (acc1[0] - acc0[0]) * 1000 / max(1, r["requests"])
    r["gate"] = gate
    return r


def metric(url, name):
    """One Prometheus sample (sum over label sets) from a /metrics page."""
    _, body = http_get(url)
    total = None
    for line in body.decode().splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
