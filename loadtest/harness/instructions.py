#!/usr/bin/env python3
"""Work per proxied request, counted instead of timed: user-space instructions (callgrind)
or heap allocations (DHAT) of one gateway thread under the suite's load (wrk rotating over
N workspaces, one origin nginx), divided by the requests wrk completed.

CPU time per request on a shared 2-vCPU VM moves by ±15 % between runs of one binary;
these counts move by well under 1 %, so they show a change of a few percent in the
gateway's own work that wall-clock runs cannot. They leave out the kernel (half of the
gateway's CPU, see loadtest/README.md) and weigh instructions equally (valgrind counts
each byte `rep movsb` copies), so they complement the suite, never replace it.

    loadtest/harness/instructions.py                      # instructions, N=1,000, no auth
    loadtest/harness/instructions.py --auth hs256 --top 30
    cargo build --release -p gateway --bin nocrd9-gateway --features system-allocator
    loadtest/harness/instructions.py --allocations --top 30
    loadtest/harness/instructions.py --proxy haproxy      # the same count for HAProxy
    loadtest/harness/instructions.py --syscalls           # system calls per request (strace -c)
    loadtest/harness/instructions.py --kernel             # user/kernel µs, faults, and how often
                                                          # the origin and wrk slept, per request

--kernel is timed, not counted (as noisy as the suite); it is there to tell where the
kernel half goes, e.g. that a slower proxy leaves its peers asleep more often, and each
wake-up is paid in the proxy's own `sendto`.

Needs valgrind (strace for --syscalls), nginx and wrk (`apt-get install valgrind strace`;
`loadtest/harness/run` installs the others) and the release binaries
(`cargo build --release --workspace --bins`).
"""
import argparse
import collections
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster  # noqa: E402
import measure  # noqa: E402
import peers  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REL = os.path.join(ROOT, "target", "release")
SECRET = "instructions-hs256-secret-instructions-hs256"
PORT, ADMIN = 18251, 19251


def program_total(annotated):
    """The `PROGRAM TOTALS` count of `callgrind_annotate` output."""
    m = re.search(r"^\s*([\d,]+)(?:\s+\([\d.]+%\))?\s+PROGRAM TOTALS", annotated, re.M)
    if not m:
        raise ValueError("no PROGRAM TOTALS in callgrind_annotate's output")
    return int(m.group(1).replace(",", ""))


def top_functions(annotated, requests, k):
    """The `k` functions with the most instructions of their own, per request (the
    thread-entry frames callgrind_annotate lists at ~100 % are left out)."""
    total = program_total(annotated)
    rows = []
    for line in annotated.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            n = int(m.group(1).replace(",", ""))
            if n < 0.9 * total:
                rows.append((n, m.group(2)))
    return [(n / requests, name) for n, name in sorted(rows, reverse=True)[:k]]


# Frames that only say "an allocation happened" (allocator, Vec, Box, Bytes internals).
PLUMBING = re.compile(r"vgpreload|library/(alloc|core|std)/|[(/](alloc|raw_vec|boxed|string|spec_\w+|clone|unix|"
                      r"mod)\.rs|/bytes-[\d.]+/|/hashbrown-|^\?\?\?|: (UnknownInlinedFun|alloc|aligned_malloc) \(")


def allocation_sites(dhat, requests, k):
    """DHAT's allocation points merged by their first two frames outside the plumbing:
    (allocations per request, mean bytes, site), most frequent first; and the total."""
    ftbl = dhat["ftbl"]
    blocks, nbytes = collections.Counter(), collections.Counter()
    for pp in dhat["pps"]:
        useful = [ftbl[i].split(": ", 1)[-1] for i in pp["fs"] if not PLUMBING.search(ftbl[i])][:2]
        site = "  <  ".join(useful) or "(allocator)"
        blocks[site] += pp["tbk"]
        nbytes[site] += pp["tb"]
    total = sum(blocks.values()) / requests
    return total, [(n / requests, nbytes[s] / n, s) for s, n in blocks.most_common(k)]


def short(name):
    """A function or site name without registry paths and binary suffixes."""
    name = re.sub(r"/root/\.cargo/registry/src/[^/]+/|/rustc/[0-9a-f]+/library/|" + re.escape(ROOT + "/"), "", name)
    return re.sub(r" \[/[^\]]*\]", "", name)[:180]


def kernel_counters(pids):
    """What the kernel did for the processes so far: CPU ticks, page faults, and context
    switches summed over every thread (a process's own status counts only its first)."""
    user, kernel = measure.cpu_split(pids)
    total = collections.Counter({"utime": user, "stime": kernel})
    for p in pids:
        with open(f"/proc/{p}/stat") as f:
            total["minor_faults"] += int(f.read().rsplit(")", 1)[1].split()[7])
        for status in glob.glob(f"/proc/{p}/task/*/status"):
            with open(status) as f:
                for line in f:
                    name, _, value = line.partition(":")
                    if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                        total[name] += int(value)
    return total


def per_request(before, after, requests):
    per = {k: (after[k] - before[k]) / requests for k in after}
    out = {"user_us": round(per.pop("utime") / measure.TICK * 1e6, 2),
           "kernel_us": round(per.pop("stime") / measure.TICK * 1e6, 2)}
    out.update({k: round(v, 4) for k, v in per.items()})
    return out


def syscall_counts(summary, requests, k):
    """`strace -c` summary → (calls per request, name) for the `k` most called."""
    rows = []
    for line in summary.splitlines():
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and f[0].replace(".", "", 1).isdigit() and f[3].isdigit() and f[-1] != "total":
            rows.append((int(f[3]) / requests, f[-1]))
    return sorted(rows, reverse=True)[:k]


def static_route_ip(i):
    """The pod address static-routes gives workspace `i` (1-based): 127.1.⌊(i−1)/250⌋.((i−1)%250+1)."""
    return f"127.1.{(i - 1) // 250}.{(i - 1) % 250 + 1}"


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def run(args):
    work = tempfile.mkdtemp(prefix="nocrd9-instructions-")
    procs = measure.Procs(work)
    try:
        procs.start("origin", ["nginx", "-c", peers.origin_conf(work), "-g", "daemon off;"], cpu=0)
        sock = os.path.join(work, "control.sock")
        procs.start("routes", [os.path.join(REL, "static-routes"), "--socket", sock, "--routes",
                               str(args.routes), "--port", str(peers.ORIGIN_PORT), "--owner", "user-1"])
        measure.wait_for(lambda: os.path.exists(sock), 10, "static-routes' socket")
        env = {"RUST_LOG": "warn"}
        if args.auth == "hs256":
            env.update({"AUTH_ENABLED": "true", "JWT_SECRET": SECRET})
        out = os.path.join(work, "profile.out")
        if args.kernel:
            tool = []
        elif args.syscalls:
            tool = ["strace", "-f", "-c", "-o", out]
        elif args.allocations:
            tool = ["valgrind", "--tool=dhat", f"--dhat-out-file={out}"]
        else:
            tool = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p"]
        ids = [f"ws-{i:05d}" for i in range(1, args.routes + 1)]  # static-routes' names
        if args.proxy == "haproxy":
            # The same routes (static-routes' address layout), HAProxy as the suite runs it.
            routes = [(w, static_route_ip(i), "user-1") for i, w in enumerate(ids, 1)]
            auth = "HS256" if args.auth == "hs256" else None
            cfg = peers.haproxy_conf(work, routes, PORT, auth, SECRET)
            gw = procs.start("haproxy", tool + ["haproxy", "-db", "-f", cfg], cpu=1)
        else:
            gw = procs.start("gateway", tool + [
                args.binary, "--listen", f"127.0.0.1:{PORT}", "--admin-listen", f"127.0.0.1:{ADMIN}",
                "--control-socket", sock, "--threads", "1", "--upgrade-sock", os.path.join(work, "up.sock"),
                "--max-connections-per-workspace", "100000"], cpu=1, env=env)
            measure.wait_for(lambda: measure.http_get(f"http://127.0.0.1:{ADMIN}/readyz")[0] == 200, 180, "readyz")
        measure.wait_for(lambda: accepts(PORT), 60, "the proxy listener")
        tokens = [cluster.hs256(SECRET, "user-1")] * len(ids) if args.auth == "hs256" else None
        lua = os.path.join(work, "load.lua")
        measure.write_lua(lua, ids, tokens)
        url = f"http://127.0.0.1:{PORT}"
        if args.kernel:
            measure.wrk(url, lua, max(3, args.seconds // 2))  # every upstream connection open
            # The proxy, and its peers: how often the origin and wrk sleep (and must be woken
            # by the proxy's writes) per request.
            pids, origin = measure.pids_of(gw.pid), measure.pids_of(procs.procs["origin"].pid)
            before, origin_before = kernel_counters(pids), kernel_counters(origin)
            r = measure.wrk(url, lua, args.seconds, rusage=True)
            after, origin_after = kernel_counters(pids), kernel_counters(origin)
            result = per_request(before, after, r["requests"])
            result["origin"] = per_request(origin_before, origin_after, r["requests"])
            w = r["wrk_rusage"]
            result["wrk"] = {"user_us": round(w["user_s"] * 1e6 / r["requests"], 2),
                             "kernel_us": round(w["kernel_s"] * 1e6 / r["requests"], 2),
                             "voluntary_ctxt_switches": round(w["voluntary_ctxt_switches"] / r["requests"], 4)}
            sites = []
        elif args.syscalls:
            # strace counts from the start: start-up and first connections are included.
            r = measure.wrk(url, lua, args.seconds)
            for pid in measure.pids_of(gw.pid)[1:]:  # the traced proxy; strace then reports
                os.kill(pid, signal.SIGINT)
            gw.wait(timeout=60)
            with open(out) as f:
                sites = syscall_counts(f.read(), r["requests"], args.top or 12)
            result = {"syscalls_per_request": round(sum(n for n, _ in sites), 2)}
        elif args.allocations:
            # DHAT counts from the start: the warm-up is part of the run (a few thousand
            # allocations of start-up among millions).
            r = measure.wrk(url, lua, args.seconds)
            gw.send_signal(signal.SIGINT)
            gw.wait(timeout=120)
            with open(out) as f:
                total, sites = allocation_sites(json.load(f), r["requests"], args.top)
            result = {"allocations_per_request": round(total, 1)}
        else:
            measure.wrk(url, lua, max(3, args.seconds // 2))  # every upstream connection open
            subprocess.run(["callgrind_control", "-z", str(gw.pid)], check=True, capture_output=True)
            r = measure.wrk(url, lua, args.seconds)
            subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
            dumps = sorted(glob.glob(out + ".*"), key=os.path.getmtime)
            if args.keep:
                shutil.copy(dumps[-1], args.keep)
            annotated = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", dumps[-1]], capture_output=True,
                                       text=True, check=True).stdout
            result = {"instructions_per_request": round(program_total(annotated) / r["requests"])}
            sites = top_functions(annotated, r["requests"], args.top)
        result.update({"proxy": args.proxy, "routes": args.routes, "auth": args.auth, "requests": r["requests"],
                       "errors": r["errors"], "binary": args.binary if args.proxy == "gateway" else "haproxy"})
        print(json.dumps(result))
        for row in sites:
            print("  " + "  ".join(f"{v:9.{2 if args.syscalls else 1}f}" if isinstance(v, float) else short(str(v))
                                   for v in row))
        return 0 if r["errors"] == 0 else 1
    finally:
        procs.stop_all()
        shutil.rmtree(work, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--routes", type=int, default=1000, help="workspaces wrk rotates over")
    p.add_argument("--auth", choices=["none", "hs256"], default="none")
    p.add_argument("--seconds", type=int, default=10, help="seconds of measured load")
    mode = p.add_mutually_exclusive_group()  # instructions (callgrind) when none is given
    mode.add_argument("--allocations", action="store_true",
                      help="count heap allocations with DHAT (a gateway built with --features system-allocator)")
    mode.add_argument("--kernel", action="store_true",
                      help="no tool: user and kernel CPU, page faults and context switches per request")
    mode.add_argument("--syscalls", action="store_true",
                      help="count system calls per request with strace -c (start-up included, negligible)")
    p.add_argument("--keep", metavar="FILE", help="also copy the callgrind profile there (callgrind_annotate "
                   "--tree=caller FILE shows who calls what)")
    p.add_argument("--top", type=int, default=0, help="also list the top functions or allocation sites")
    p.add_argument("--binary", default=os.path.join(REL, "nocrd9-gateway"))
    p.add_argument("--proxy", choices=["gateway", "haproxy"], default="gateway",
                   help="count our gateway or HAProxy (configured as the suite runs it) under the same load")
    args = p.parse_args()
    if args.proxy == "haproxy" and args.allocations:
        print("instructions: --allocations counts the gateway only (HAProxy uses its own pools)", file=sys.stderr)
        return 2
    needs = () if args.kernel else ("strace",) if args.syscalls else ("valgrind",)
    for tool in needs + ("nginx", "wrk", "taskset") + (("haproxy",) if args.proxy == "haproxy" else ()):
        if not shutil.which(tool):
            print(f"instructions: {tool} is not installed", file=sys.stderr)
            return 2
    for b in (args.binary, os.path.join(REL, "static-routes")):
        if not os.path.exists(b):
            print(f"instructions: {b} is missing: cargo build --release --workspace --bins", file=sys.stderr)
            return 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
