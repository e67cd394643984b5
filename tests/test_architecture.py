"""The floors of cllm_app (docs/ARCHITECTURE.md) hold: every import points down, and no two
modules import each other, directly or round a circle. A new arrow that points up fails here."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cllm_app"

# Top to bottom. A module may import its own floor and the floors below it, and the shared
# modules (anyone may use them; they import only each other).
FLOORS = [
    {"__main__", "cli", "desktop", "server", "bundle_kit"},  # the ways in: the command, the window, the
                                                            # server, a training bundle's train.py
    {"api"},                                   # HTTP: thin routes over the services
    {"jobs"},                                  # background work, each in its own process
    {"services"},                              # the rules
    {"engine", "data", "store"},               # the model and its training, reading files, SQLite
    {"kernels"},                               # compiled kernels: import nothing of ours
]
SHARED = {"__init__", "errors", "paths", "fsutil", "procs", "instance", "training_settings"}
# Side by side on one floor: which may import which (the engine, data and the store know
# nothing of each other).
SIDEWAYS = {("desktop", "server"), ("cli", "desktop"), ("cli", "server"), ("__main__", "cli")}


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__") if rel.name == "__init__" else ".".join(rel.parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        mod = _module(path)
        out = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name.startswith("cllm_app")}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("cllm_app"):
                out.add(node.module)
                # `from cllm_app.x import y` may name a module y
                out |= {f"{node.module}.{a.name}" for a in node.names}
        graph[mod] = out
    modules = set(graph)
    return {m: {i for i in imported if i in modules and i != m} for m, imported in graph.items()}


def _floor(room: str) -> int | None:
    return next((i for i, rooms in enumerate(FLOORS) if room in rooms), None)


def test_every_import_points_down_or_to_a_shared_module():
    wrong = []
    for mod, imported in _imports().items():
        src = _room(mod)
        for target in imported:
            dst = _room(target)
            if dst == src or dst in SHARED or (src, dst) in SIDEWAYS:
                continue
            if src in SHARED:
                wrong.append(f"{mod} -> {target} (a shared module imports only shared ones)")
                continue
            a, b = _floor(src), _floor(dst)
            assert a is not None and b is not None, f"{src} or {dst} has no floor: add it to FLOORS"
            if b <= a:
                wrong.append(f"{mod} -> {target}")
    assert wrong == [], "imports against the floors:\n" + "\n".join(sorted(wrong))


def test_no_modules_import_each_other_round_a_circle():
    graph = _imports()
    # Imports inside functions count too: they are how a circle used to be hidden.
    seen, stack, on_stack, circles = set(), [], set(), []

    def visit(m: str) -> None:
        seen.add(m)
        stack.append(m)
        on_stack.add(m)
        for n in sorted(graph[m]):
            if n in on_stack:
                circles.append(" -> ".join(stack[stack.index(n):] + [n]))
            elif n not in seen:
                visit(n)
        stack.pop()
        on_stack.discard(m)

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert circles == [], "circles:\n" + "\n".join(circles)


def test_services_are_handed_services_never_the_studio():
    """One idiom: a service is an object the Studio holds (studio.training.start(...)), built
    from the other services it uses. A function of services/ that took the whole Studio would
    bring back the second idiom (free functions taking `studio` first)."""
    offenders = []
    for path in (PACKAGE / "services").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
                if "studio" in names:
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert offenders == []
