#!/usr/bin/env python3
"""Fails when the library's modules import each other in a cycle.

Dependencies in crates/airssys-wasm/src must point one way, from the
composition root (actor/, system/) down to the leaves (error, units). This
reads every `crate::`, `super::` and `self::` path outside comments and
`#[cfg(test)]` blocks and checks two graphs:

  * the top-level modules (actor, host, runtime, ...): no cycle between them;
  * the files inside each top-level module: no cycle between siblings.

A `pub use` is a re-export (where a type is named), not a dependency, and is
not counted; a `mod x;` declaration is not counted either. Everything else
(`use`, a path in code or in a type) is.

Usage: scripts/check-deps.py [--graph]   (--graph prints the layers)
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "airssys-wasm", "src")


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib"):
        rel = rel[:-1]
    return tuple(rel)


def strip(src):
    # Test modules at the end of a file depend on what they test; they are not the house.
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", src)
    if m:
        src = src[: m.start()]
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'"(?:[^"\\]|\\.)*"', '""', src)
    return src


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]"""
    tree = tree.strip()
    i = tree.find("{")
    if i < 0:
        return [tree.split(" as ")[0].strip()]
    prefix, body = tree[:i], tree[i + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [p for part in parts if part.strip() for p in expand(prefix + part.strip())]


def main():
    modules = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(dirpath, f)
                modules[module_of(p)] = p
    known = set(modules)

    def resolve(here, path):
        segs = [s for s in path.split("::") if s]
        if not segs:
            return None
        if segs[0] == "crate":
            base, segs = (), segs[1:]
        elif segs[0] in ("super", "self"):
            base = here
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
        elif here + (segs[0],) in known:  # a child module named relatively
            base = here
        else:
            return None
        target = base
        for i, s in enumerate(segs):
            if target + (s,) in known:
                target = target + (s,)
            else:
                # A name re-exported here (`crate::ActorId`) stands for where it is defined.
                target = reexports.get(target, {}).get(s, target)
                break
        return target

    # Names each module re-exports with `pub use`, resolved once, so that
    # `crate::ActorId` counts as a dependency on the module that defines it.
    reexports = defaultdict(dict)
    raw = {}
    for mod, path in modules.items():
        src = strip(open(path, encoding="utf-8").read())
        for m in re.finditer(r"(?m)^\s*pub(?:\([^)]*\))?\s+use\s+([^;]+);", src):
            for full in expand(m.group(1)):
                name = full.split("::")[-1]
                if name not in ("*", "self"):
                    raw.setdefault(mod, []).append((name, full))
    for _ in range(3):  # re-exports of re-exports
        for mod, items in raw.items():
            for name, full in items:
                t = resolve(mod, full)
                if t is not None:
                    reexports[mod][name] = t

    edges = defaultdict(set)  # file module -> file modules
    for mod, path in modules.items():
        src = strip(open(path, encoding="utf-8").read())
        # Files are modules; a file whose `mod.rs` holds code is `here`.
        here = mod
        uses = []
        for m in re.finditer(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", src):
            if m.group(1):
                continue  # re-export
            uses += expand(m.group(2))
        body = re.sub(r"(?m)^\s*(pub(?:\([^)]*\))?\s+)?use\s+[^;]+;", "", src)
        uses += re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", body)
        for u in uses:
            t = resolve(here, u)
            if t is not None and t != mod and t != ():
                edges[mod].add(t)

    failures = []

    def tangles(graph):
        """Strongly connected components with more than one module (Tarjan)."""
        index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in sorted(graph.get(v, ())):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

        for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
            if v not in index:
                visit(v)
        return out

    def name(m):
        return "::".join(m) or "crate"

    # Top level.
    top = defaultdict(set)
    for a, targets in edges.items():
        for b in targets:
            if a[:1] != b[:1] and a and b:
                top[a[:1]].add(b[:1])
    for comp in tangles(top):
        failures.append("top-level modules in a cycle: " + ", ".join(name(m) for m in comp))
        # Say which files make the edges inside it, so the cycle can be cut.
        for x in comp:
            for y in comp:
                who = sorted(name(a) + " -> " + name(b) for a, ts in edges.items() for b in ts if a[:1] == x and b[:1] == y)
                if who and x != y:
                    failures.append("    " + name(x) + " -> " + name(y) + ": " + ", ".join(who))

    # Siblings inside each top-level module (files, by their path).
    for group in sorted({m[:1] for m in known if m}):
        inner = defaultdict(set)
        for a, targets in edges.items():
            for b in targets:
                if a[:1] == group and b[:1] == group and a != b:
                    inner[a].add(b)
        for comp in tangles(inner):
            failures.append("inside " + name(group) + ", files in a cycle: " + ", ".join(name(m) for m in comp))
            for x in comp:
                ys = sorted(name(y) for y in inner[x] if y in comp)
                failures.append("    " + name(x) + " -> " + ", ".join(ys))

    if "--graph" in sys.argv:
        layers, placed = [], set()
        nodes = {m[:1] for m in known if m}
        while len(placed) < len(nodes):
            layer = sorted(n for n in nodes - placed if top.get(n, set()) - {n} <= placed)
            if not layer:
                break
            layers.append(layer)
            placed |= set(layer)
        for i, layer in enumerate(layers):
            print("layer %d: %s" % (i, ", ".join(name(n) for n in layer)))
        for a in sorted(top):
            print("  %s -> %s" % (name(a), ", ".join(sorted(name(b) for b in top[a]))))

    if failures:
        print("check-deps: import cycles in crates/airssys-wasm/src:", file=sys.stderr)
        for f in failures:
            print("  " + f, file=sys.stderr)
        sys.exit(1)
    print("check-deps: %d modules, no import cycle" % len(known))


if __name__ == "__main__":
    main()
