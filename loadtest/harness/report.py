"""Writes the suite's results: `<date>.json` (every run), `<date>.md` (the tables) and
`<date>-scale.svg` (throughput and p99 against the number of routes)."""

import json
import os
import statistics

# ../shared/reference/perf-anchors.md: the same job on this kind of machine (µs/request).
ANCHORS = {"haproxy": 17.7, "haproxy-hs256": 25.0, "haproxy-rs256": 53.6, "nginx": 26.9, "chp": 189.4}
TARGETS = {"gateway": 17.7, "gateway-hs256": 19.0, "gateway-rs256": 20.0}


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def med(runs, key):
    vals = [r[key] for r in runs]
    return statistics.median(vals), min(vals), max(vals)


def fmt(m, digits=1, scale=1.0):
    median, lo, hi = m
    return f"{median * scale:,.{digits}f} ({lo * scale:,.{digits}f}–{hi * scale:,.{digits}f})"


def split(runs):
    """Median user + kernel µs/request ("—" for runs recorded before the split was)."""
    if not runs or any("user_us_per_req" not in r for r in runs):
        return "—"
    return f"{med(runs, 'user_us_per_req')[0]:.1f} + {med(runs, 'kernel_us_per_req')[0]:.1f}"


def main_table(main):
    rows = ["| config | req/s | p50 ms | p99 ms | p99.9 ms | proxy CPU µs/req | user + kernel µs | anchor / target µs "
            "| RSS MiB | new upstream conns / 1k req | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in main.items():
        if not runs:
            continue
        ref = ANCHORS.get(name)
        ref = f"anchor {ref}" if ref else (f"target ≤ {TARGETS[name]}" if name in TARGETS else "—")
        rows.append(
            f"| {name} | {fmt(med(runs, 'rps'), 0)} | {med(runs, 'p50')[0] / 1000:.2f} | {med(runs, 'p99')[0] / 1000:.2f} "
            f"| {med(runs, 'p999')[0] / 1000:.2f} | {fmt(med(runs, 'cpu_us_per_req'))} | {split(runs)} | {ref} "
            f"| {med(runs, 'rss_kib')[0] / 1024:.1f} | {med(runs, 'new_upstream_per_1k')[0]:.2f} "
            f"| {sum(r['errors'] for r in runs)} |")
    return "\n".join(rows)


def svg_scale(scale):
    """Two panels: req/s and p99 (ms) against N (log axis), medians with min–max bars."""
    pts = sorted((int(n), v["runs"]) for n, v in scale.items())
    if not pts:
        return None
    w, h, pad = 760, 300, 60
    import math

    def panel(x0, key, unit, title, conv):
        vals = [(n, [conv(r[key]) for r in runs]) for n, runs in pts]
        top = max(max(v) for _, v in vals) * 1.15 or 1
        lo_n, hi_n = math.log10(min(n for n, _ in vals)), math.log10(max(n for n, _ in vals))
        span = (hi_n - lo_n) or 1
        pw = w / 2 - pad - 20

        def X(n):
            return x0 + pad + (math.log10(n) - lo_n) / span * pw

        def Y(v):
            return h - pad + 10 - v / top * (h - pad - 30)
        parts = [f'<text x="{x0 + pad + pw / 2}" y="18" text-anchor="middle" font-weight="bold">{title}</text>',
                 f'<line x1="{x0 + pad}" y1="{h - pad + 10}" x2="{x0 + pad + pw}" y2="{h - pad + 10}" stroke="#444"/>',
                 f'<line x1="{x0 + pad}" y1="{h - pad + 10}" x2="{x0 + pad}" y2="30" stroke="#444"/>']
        for k in range(5):
            v = top * k / 4
            parts.append(f'<text x="{x0 + pad - 6}" y="{Y(v) + 4}" text-anchor="end" font-size="11">{v:,.0f}{unit}</text>')
            parts.append(f'<line x1="{x0 + pad}" y1="{Y(v)}" x2="{x0 + pad + pw}" y2="{Y(v)}" stroke="#ddd"/>')
        line = []
        for n, v in vals:
            m = statistics.median(v)
            line.append(f"{X(n):.1f},{Y(m):.1f}")
            parts.append(f'<line x1="{X(n)}" y1="{Y(min(v))}" x2="{X(n)}" y2="{Y(max(v))}" stroke="#0b5cad"/>')
            parts.append(f'<circle cx="{X(n)}" cy="{Y(m)}" r="4" fill="#0b5cad"/>')
            parts.append(f'<text x="{X(n)}" y="{h - pad + 28}" text-anchor="middle" font-size="11">{n:,}</text>')
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#0b5cad" stroke-width="2"/>')
        parts.append(f'<text x="{x0 + pad + pw / 2}" y="{h - 8}" text-anchor="middle" font-size="12">routes in the table (N)</text>')
        return "\n".join(parts)
    body = panel(0, "rps", "", "nocrd9-gateway req/s (one core)", lambda v: v) + "\n" + \
        panel(w / 2, "p99", "", "p99 latency (ms)", lambda v: v / 1000)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">'
            f'<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


def write(results, out, date):
    paths = []
    jpath = os.path.join(out, f"{date}.json")
    with open(jpath, "w") as f:
        json.dump(results, f, indent=1, default=str)
    paths.append(jpath)
    svg = svg_scale(results.get("scale", {}))
    svg_name = f"{date}-scale.svg"
    if svg:
        with open(os.path.join(out, svg_name), "w") as f:
            f.write(svg)
        paths.append(os.path.join(out, svg_name))
    m = results.get("machine", {})
    cfg = results.get("config", {})
    lines = [f"# Load test, {date}", "",
             f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('mem_gib', '?')} GiB, "
             f"kernel {m.get('kernel', '?')}; commit `{m.get('commit', '?')}`. "
             f"{m.get('nginx', '')}; {m.get('haproxy', '')}; {m.get('wrk', '')}; "
             f"configurable-http-proxy {m.get('chp', '?')} on node {m.get('node', '?')}.", "",
             f"Method: every proxy pinned to CPU1 with one worker/thread; wrk (`-t1 -c64`, Lua rotating through the "
             f"workspaces, each request with its owner's token when auth is on), the origin nginx (one worker on "
             f"`0.0.0.0:18080` answering every pod IP) and kube-sim + nocrd9 on CPU0. {cfg.get('warmup')} s warm-up, "
             f"{cfg.get('duration')} s measured, {cfg.get('runs')} interleaved rounds; figures are medians "
             f"(min–max). CPU µs/request = Δ(utime+stime) of the proxy's processes from /proc ÷ requests. "
             f"Routes come from workspace pods created through the Kubernetes API of kube-sim "
             f"(`--external-workloads`), published by nocrd9's watch over the Unix socket; the peers are "
             f"configured by the harness from the same list (ids → pod IPs, owners). "
             f"Our gateway runs with access logs off (`gateway`) and on (`gateway-log`); the peers log nothing.",
             f"Wall time {results.get('wall_seconds', '?')} s. Start: machine {results.get('start_gate', {}).get('busy', 0) * 100:.0f}% busy.", ""]
    if results.get("aborted"):
        lines += [f"**The run stopped early: {results['aborted']}.** What it measured before is below.", ""]
    checks = results.get("checks", [])
    if checks:
        failed = [c for c in checks if not c["ok"]]
        lines += [f"Correctness checks before measuring: {len(checks) - len(failed)}/{len(checks)} passed."
                  + ("".join(f"\n- FAILED {c['proxy']} {c['path']}: expected {c['expect']}, got {c['got']}"
                             for c in failed)), ""]
    if results.get("main"):
        lines += [f"## Side by side, N = {cfg.get('main_n')} routes", "", main_table(results["main"]), ""]
    two = results.get("two_cores", {})
    if two:
        lines += [f"## Both cores, N = {cfg.get('main_n')} routes", "",
                  "Each proxy on CPUs 0–1 (our gateway `--threads 2`, HAProxy `nbthread 2`, nginx 2 workers); "
                  "wrk and the origin share CPU0 — there is no third core.", "",
                  "| proxy | req/s | CPU µs/req | requests per CPU-second | p99 ms | errors |", "|---|---|---|---|---|---|"]
        for name, runs in two.items():
            if runs:
                us = med(runs, "cpu_us_per_req")
                lines.append(f"| {name} | {fmt(med(runs, 'rps'), 0)} | {fmt(us)} | {1e6 / us[0]:,.0f} "
                             f"| {med(runs, 'p99')[0] / 1000:.2f} | {sum(r['errors'] for r in runs)} |")
        lines.append("")
    scale = results.get("scale", {})
    if scale:
        lines += ["## Lookup scale (no auth; HAProxy on the same routes, rounds interleaved)", "",
                  f"![throughput and p99 against N]({svg_name})", "",
                  "| routes in table | routes with traffic | req/s | CPU µs/req | user + kernel µs | p99 ms "
                  "| ratio to smallest N (µs/req) | RSS MiB | new upstream / 1k | HAProxy CPU µs/req "
                  "| HAProxy user + kernel µs | HAProxy ratio to smallest N |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        base = peer_base = None
        for n in sorted(scale, key=int):
            runs = scale[n]["runs"]
            us = med(runs, "cpu_us_per_req")
            base = base or us[0]
            peer = scale[n].get("haproxy_runs") or []
            if peer:
                peer_us = med(peer, "cpu_us_per_req")
                peer_base = peer_base or peer_us[0]
                peer_cols = f"{fmt(peer_us)} | {split(peer)} | {peer_us[0] / peer_base:.2f}×"
            else:
                peer_cols = "— | — | —"
            lines.append(f"| {int(n):,} | {scale[n]['traffic_routes']:,} | {fmt(med(runs, 'rps'), 0)} | {fmt(us)} "
                         f"| {split(runs)} | {med(runs, 'p99')[0] / 1000:.2f} | {us[0] / base:.2f}× "
                         f"| {scale[n]['rss_kib'] / 1024:.1f} | {med(runs, 'new_upstream_per_1k')[0]:.2f} "
                         f"| {peer_cols} |")
        lines.append("")
    churn = results.get("churn", {})
    if churn:
        lines += ["## Route churn during full load (N = 1000, no auth)", "",
                  "| route changes asked / s | achieved / s | deltas applied / s | req/s | ratio to 0 | CPU µs/req | errors |",
                  "|---|---|---|---|---|---|---|"]
        base = med(churn["0"], "rps")[0] if "0" in churn else None
        for rate in sorted(churn, key=int):
            runs = churn[rate]
            rps = med(runs, "rps")
            achieved = statistics.median(r.get("route_changes_per_s", 0) for r in runs)
            applied = statistics.median(r.get("deltas_applied_per_s", 0) for r in runs)
            lines.append(f"| {rate} | {achieved:,.0f} | {applied:,.0f} | {fmt(rps, 0)} | "
                         f"{rps[0] / base:.3f}× | {fmt(med(runs, 'cpu_us_per_req'))} | {sum(r['errors'] for r in runs)} |")
        lines.append("")
    prop, spawn = results.get("propagation", {}), results.get("spawn", {})
    if prop.get("ready_to_200_ms"):
        r2, c2 = prop["ready_to_200_ms"], prop["create_to_200_ms"]
        lines += ["## Route propagation", "",
                  "| figure | count | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|",
                  f"| pod Ready in the API → first 200 through the gateway | {len(r2)} | {pct(r2, 50):.2f} | "
                  f"{pct(r2, 99):.2f} | {max(r2):.2f} |",
                  f"| pod created → first 200 | {len(c2)} | {pct(c2, 50):.2f} | {pct(c2, 99):.2f} | {max(c2):.2f} |"]
        if spawn.get("spawn_to_200_ms"):
            s2 = spawn["spawn_to_200_ms"]
            lines.append(f"| `spawn_workspace` (MCP, wait=false) → first 200 | {len(s2)} | {pct(s2, 50):.2f} | "
                         f"{pct(s2, 99):.2f} | {max(s2):.2f} |")
        lines += ["", "Negative values mean the gateway served the route before the harness's own watch "
                      "reported the pod Ready (both watch the same API).", ""]
    ws = results.get("websockets", {})
    if ws.get("connections"):
        lines += ["## WebSockets held", "",
                  f"{ws['opened']:,} of {ws['connections']:,} connections opened through the gateway to "
                  f"{ws['workspaces']} workspaces (kube-sim's built-in echo app, auth on), held "
                  f"{cfg.get('ws_hold')} s with a frame every 5 s each: {ws['frames_echoed']:,} of "
                  f"{ws['frames_sent']:,} frames echoed, **{ws['dropped']} dropped**, {ws['open_failed']} failed to open. "
                  f"Gateway RSS {ws['rss_before_kib'] / 1024:.1f} MiB before, {ws['rss_held_kib'] / 1024:.1f} MiB "
                  f"while held ({ws['kib_per_connection']:.1f} KiB per connection), {ws['rss_after_kib'] / 1024:.1f} MiB "
                  f"after; {ws['gateway_fds_held']:,} open files while held."
                  + (f" First errors: {ws['first_errors']}" if ws.get("first_errors") else ""), ""]
    ck = results.get("control_kill", {})
    if ck.get("requests"):
        lines += ["## Control plane killed under load", "",
                  f"wrk for 12 s on the {cfg.get('main_n')} existing routes; nocrd9 SIGKILLed at 3 s and "
                  f"restarted at 6 s: {ck['requests']:,} requests, **{ck['errors']} failed** "
                  f"({ck['status_errors']} non-2xx). The restarted control plane was ready "
                  f"{ck['restart_to_ready_ms']:.0f} ms after its start and the gateway had resynced (new snapshot "
                  f"applied) {ck['restart_to_resync_ms']:.0f} ms after it; table size after: {ck['table_after']:.0f}.", ""]
    for note in results.get("notes", []):
        lines += [f"Note: {note}", ""]
    mpath = os.path.join(out, f"{date}.md")
    with open(mpath, "w") as f:
        f.write("\n".join(lines))
    paths.insert(0, mpath)
    return paths
