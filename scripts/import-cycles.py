#!/usr/bin/env python3
"""Finds import cycles between the modules of each crate in this workspace.

A module is a source file (`lib.rs`/`main.rs` is the crate root, `a/mod.rs` and `a.rs` are
`a`, `a/b.rs` is `a::b`). An edge A -> B is a `crate::b…` path (or `super::…` resolved) in A
that names module B or something inside it. Declaring a child (`mod x;`) is not an edge,
and a module's own `tests` children are left out (they import their parent by design).
Prints every cycle (a strongly connected set of two or more modules) and exits 1 if there
is one; `--graph` also prints every edge.
"""

import os
import re
import sys

CRATES = ["shared", "kube-sim", "gateway", "control", "loadtest"]
PATH = re.compile(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)::\{([^;]*)\}", re.S)


def modules(src):
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)[:-3].split(os.sep)
            if rel[-1] in ("lib", "main") and len(rel) == 1:
                name = ()
            elif rel[-1] == "mod":
                name = tuple(rel[:-1])
            elif rel[0] == "bin":
                continue
            else:
                name = tuple(rel)
            if name and name[-1] == "tests":
                continue
            mods[name] = os.path.join(dirpath, f)
    return mods


def resolve(mods, here, kind, segs):
    base = () if kind == "crate" else here[:-1]
    full = base + tuple(segs)
    for n in range(len(full), 0, -1):
        if full[:n] in mods:
            return full[:n]
    return None


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def edges_of(mods):
    edges = {m: set() for m in mods}
    for m, path in mods.items():
        text = strip_comments(open(path, encoding="utf-8").read())
        found = [(k, p.split("::")[1:]) for k, p in PATH.findall(text)]
        for kind, group in USE_GROUP.findall(text):
            for item in re.split(r",\s*", group):
                head = item.strip().split("::")[0].split(" ")[0]
                if head and head not in ("self", "{"):
                    found.append((kind, [head]))
        for kind, segs in found:
            target = resolve(mods, m, kind, segs)
            if target is not None and target != m and target != ():
                edges[m].add(target)
    return edges


def cycles(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(scc)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    show = "--graph" in sys.argv
    bad = 0
    for crate in CRATES:
        src = os.path.join(root, crate, "src")
        mods = modules(src)
        edges = edges_of(mods)
        found = cycles(edges)
        n_edges = sum(len(v) for v in edges.values())
        print(f"{crate}: {len(mods)} modules, {n_edges} import edges, {len(found)} cycles")
        if show:
            for m in sorted(edges):
                for t in sorted(edges[m]):
                    print(f"  {'::'.join(m) or '(root)'} -> {'::'.join(t)}")
        for scc in found:
            bad += 1
            names = sorted("::".join(m) for m in scc)
            print(f"  cycle: {' <-> '.join(names)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
