#!/usr/bin/env python3
"""List the Rust crate's module imports as edges and report import circles.

Every file is a module (`auth.rs` is `auth`, `api/dbfs.rs` is `api::dbfs`,
`local/mod.rs` is `local`). An edge A -> B means code of A names B by a path:
`use crate::b::...`, `super::...`, `self::...`, a child module by its bare
name, or such a path inline (`crate::deadline::cap(...)`). Comments, strings
and `#[cfg(test)]` modules are left out (a test may use anything); `lib.rs`
(which declares the modules) and `bin/` (another crate) are not modules here.

A circle is a set of modules that import each other, directly or through
others (a strongly connected component of more than one module).

    tools/rust-imports.py                      # circles of the whole crate
    tools/rust-imports.py --edges              # every edge, then the circles
    tools/rust-imports.py --under src/rust/src/local    # circles touching local/
    tools/rust-imports.py --except src/rust/src/local   # ignore circles inside local/

Exits 1 when a circle is reported, 0 otherwise.
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ROOT = os.path.join(HERE, "..", "src", "rust", "src")


def strip_code(text):
    """The source with comments, string and char literals blanked out."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
            out.append(" ")
        elif (c == "r" or text.startswith("br", i)) and re.match(r'b?r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(b?r)(#*)"', text[i:])
            close = '"' + m.group(2)
            j = text.find(close, i + len(m.group(0)))
            i = n if j < 0 else j + len(close)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'":
            # A char literal ('x', '\n', '\''); otherwise a lifetime ('a).
            if i + 1 < n and text[i + 1] == "\\":
                j = text.find("'", i + 3)
                i = n if j < 0 else j + 1
                out.append("' '")
            elif i + 2 < n and text[i + 2] == "'":
                i += 3
                out.append("' '")
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_modules(code):
    """`#[cfg(test)] mod x { ... }` removed (brace-matched)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code)
        if not m:
            return code
        depth, i = 1, m.end()
        while i < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            i += 1
        code = code[: m.start()] + code[i:]


def module_of(rel):
    """`api/dbfs.rs` -> `api::dbfs`, `local/mod.rs` -> `local`."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return "::".join(parts)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [`a::b`, `a::c::d`, `a::c::e`] (`self` kept as the prefix)."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [re.sub(r"(::self)?(as\w+)?$", "", tree)] if tree else []
    prefix, inner = m.group(1), m.group(2)
    items, depth, start = [], 0, 0
    for k, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(inner[start:k])
            start = k + 1
    items.append(inner[start:])
    out = []
    for it in items:
        if not it:
            continue
        if it == "self":
            out.append(prefix.rstrip(":"))
        else:
            out.extend(prefix + p for p in expand_use(it))
    return out


def resolve(path, here, is_dir_module, modules):
    """The module a path names from module `here`, or None (std, other crates, itself)."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    base = here.split("::") if here else []
    if segs[0] == "crate":
        cur, segs = [], segs[1:]
    elif segs[0] in ("super", "self"):
        # A file module's `self` is itself; `super` of a mod.rs or a file is its parent.
        cur = list(base)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                cur = cur[:-1]
            segs = segs[1:]
    elif "::".join(base + segs[:1]) in modules:
        cur = list(base)  # a child module by its bare name
    else:
        return None
    best = "::".join(cur) if cur else None
    for s in segs:
        cur = cur + [s]
        name = "::".join(cur)
        if name in modules:
            best = name
        else:
            break
    return best if best != here else None


def read_crate(root):
    files = {}
    for d, dirs, names in os.walk(root):
        rel_dir = os.path.relpath(d, root)
        if rel_dir.split(os.sep)[0] == "bin":
            continue
        for f in names:
            if f.endswith(".rs"):
                rel = os.path.normpath(os.path.join(rel_dir, f))
                if rel in ("lib.rs", "main.rs"):
                    continue
                files[module_of(rel)] = os.path.join(d, f)
    return files


PATH_RE = re.compile(r"(?<![\w:])((?:crate|super|self|[a-z_][a-z0-9_]*)(?:\s*::\s*(?:\w+|\{))+)")


def edges_of(files):
    modules = set(files)
    edges = {}
    for mod, path in sorted(files.items()):
        with open(path, encoding="utf-8") as fh:
            code = drop_test_modules(strip_code(fh.read()))
        targets = set()
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            for p in expand_use(m.group(1)):
                t = resolve(p, mod, path.endswith("mod.rs"), modules)
                if t:
                    targets.add(t)
        # Inline paths outside `use` statements.
        inline = re.sub(r"\buse\s+[^;]+;", " ", code)
        for m in PATH_RE.finditer(inline):
            p = re.sub(r"\s+", "", m.group(1)).rstrip("{").rstrip(":")
            t = resolve(p, mod, path.endswith("mod.rs"), modules)
            if t:
                targets.add(t)
        edges[mod] = sorted(targets)
    return edges


def circles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, []):
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

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=DEFAULT_ROOT, help="the crate's src/ (default: src/rust/src)")
    ap.add_argument("--under", action="append", default=[], metavar="DIR",
                    help="report only circles with a module under DIR (repeatable)")
    ap.add_argument("--except", dest="except_", action="append", default=[], metavar="DIR",
                    help="do not report circles whose modules all lie under DIR (repeatable)")
    ap.add_argument("--edges", action="store_true", help="print every edge `from -> to` first")
    args = ap.parse_args(argv)

    root = os.path.abspath(args.root)
    files = read_crate(root)
    edges = edges_of(files)

    def inside(mod, dirs):
        p = os.path.abspath(files[mod])
        return any(p.startswith(os.path.abspath(d).rstrip(os.sep) + os.sep) for d in dirs)

    if args.edges:
        for a in sorted(edges):
            for b in edges[a]:
                print(f"{a} -> {b}")
    found = circles(edges)
    if args.under:
        found = [c for c in found if any(inside(m, args.under) for m in c)]
    if args.except_:
        found = [c for c in found if not all(inside(m, args.except_) for m in c)]
    n_edges = sum(len(v) for v in edges.values())
    print(f"{len(files)} modules, {n_edges} import edges, {len(found)} circle{'s' if len(found) != 1 else ''}")
    for k, comp in enumerate(found, 1):
        members = set(comp)
        print(f"circle {k}: {', '.join(comp)}")
        for a in comp:
            for b in edges[a]:
                if b in members:
                    print(f"  {a} -> {b}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
