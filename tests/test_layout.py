"""The package's import graph points one way: data -> model -> training -> export -> serving
(docs/ARCHITECTURE.md, "The flow"), with no cycles.

The graph is read from the source files with ``ast``, so it holds every import statement,
including those inside functions (which ``sys.modules`` after an import would miss until the
function runs), and no module is executed. Imports made through ``importlib`` (the methods
package importing its own files) are not statements and are not seen.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Import name -> source folder, as setup.py's package_dir installs them.
SOURCES = {
    "tfgan_mix": ROOT / "tfgan_mix",
    "tfgan_mix.training": ROOT / "training",
    "tfgan_mix.export": ROOT / "export",
    "tfgan_mix.serving": ROOT / "serving",
    "tfgan_mix.benchmarks": ROOT / "benchmarks",
}
LAYERS = ("data", "model", "training", "export", "serving", "benchmarks", "entry point")  # an import may only point left
# Module or package -> layer; the longest matching name wins.
LAYER_OF = {
    "tfgan_mix.data": "data",
    # The model layer: core, layers, losses, backbones, methods, the run directory (runs), and the
    # tools that judge a model's samples (metrics, judges: a trained two-sample classifier and
    # critic) or draw them (vis). The package's own __init__ is its facade (get_method and so on).
    "tfgan_mix": "model",
    "tfgan_mix.training": "training",
    "tfgan_mix.export": "export",
    "tfgan_mix.serving": "serving",
    # `tfgan-mix bench`: trains, exports, serves and samples, so it sits above serving.
    "tfgan_mix.benchmarks": "benchmarks",
    # `tfgan-mix` (setup.py's console script) dispatches every command: train, export, serve.
    "tfgan_mix.training.cli": "entry point",
}


def discover_modules():
    """``{module name: (path, is_package)}`` for every source file of the package."""
    modules = {}
    for name, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules[".".join([name, *parts])] = (path, is_package)
    return modules


def imports_of(source, module, is_package, known):
    """``[(imported module, line)]`` for every import statement in ``source`` (at any depth) that
    names one of the ``known`` modules: ``from P import name`` counts as importing ``P.name`` when
    that is a module, else ``P``; a name outside ``known`` counts as its nearest known parent."""
    package = module if is_package else module.rpartition(".")[0]

    def resolve(name):
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [resolve(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            targets = [resolve(f"{base}.{alias.name}") if f"{base}.{alias.name}" in known else resolve(base)
                       for alias in node.names]
        else:
            continue
        found += [(target, node.lineno) for target in targets if target and target != module]
    return found


def import_graph():
    """``{module: {imported module: first line}}`` over the whole package."""
    modules = discover_modules()
    graph = {}
    for module, (path, is_package) in modules.items():
        edges = graph.setdefault(module, {})
        for target, line in imports_of(path.read_text(encoding="utf-8"), module, is_package, modules):
            edges.setdefault(target, line)
    return graph


def layer_of(module):
    owner = max((name for name in LAYER_OF if module == name or module.startswith(name + ".")), key=len)
    return LAYER_OF[owner]


def unit_of(module, packages):
    """The package a module belongs to (``tfgan_mix.core``, ``tfgan_mix.training``, ...). A module
    directly in ``tfgan_mix`` (metrics, runs, the package's __init__ ...) is a unit of its own:
    they are the model layer's loose modules, not one package. So is the entry point: it lives in
    ``training/`` but sits above every layer (it imports the benchmarks, which import training)."""
    if layer_of(module) == "entry point":
        return module
    owners = [p for p in packages if p != "tfgan_mix" and (module == p or module.startswith(p + "."))]
    return max(owners, key=len) if owners else module


def cycles(graph):
    """Strongly connected components with more than one member (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _describe(component, graph):
    inside = set(component)
    return "; ".join(f"{a} -> {b} (line {line})" for a in component
                     for b, line in sorted(graph[a].items()) if b in inside)


# ---------------------------------------------------------------------- the package
def test_every_module_is_found_and_has_a_layer():
    graph = import_graph()
    for module in ("tfgan_mix", "tfgan_mix.runs", "tfgan_mix.data.toy", "tfgan_mix.methods.npgan",
                   "tfgan_mix.training.train", "tfgan_mix.training.presets", "tfgan_mix.export.writer",
                   "tfgan_mix.serving.model_server"):
        assert module in graph
    assert {layer_of(module) for module in graph} == set(LAYERS)


def test_no_module_level_import_cycle():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles between modules:\n" + "\n".join(_describe(c, graph) for c in found)


def test_no_import_cycle_between_packages():
    graph = import_graph()
    packages = {module for module, (_, is_package) in discover_modules().items() if is_package}
    units = {}
    lines = {}
    for module, edges in graph.items():
        for target, line in edges.items():
            a, b = unit_of(module, packages), unit_of(target, packages)
            if a != b:
                units.setdefault(a, {})[b] = line
                lines.setdefault((a, b), f"{module} -> {target} (line {line})")
    found = cycles(units)
    assert not found, "import cycles between packages:\n" + "\n".join(
        " | ".join(lines[a, b] for a in c for b in units.get(a, {}) if b in c) for c in found)


def test_imports_only_point_down_the_layers():
    graph = import_graph()
    upward = [f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)}) at line {line}"
              for module, edges in sorted(graph.items()) for target, line in sorted(edges.items())
              if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))]
    assert not upward, "imports pointing up a layer:\n" + "\n".join(upward)


# ---------------------------------------------------------------------- the graph builder itself
def test_imports_are_read_at_every_depth_and_resolved_to_modules():
    known = {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"}
    source = (
        "import os\n"
        "import pkg.a\n"
        "from pkg import b, helper\n"
        "def f():\n"
        "    from ..sub import c\n"
        "    from ..outside import x\n"
        "class K:\n"
        "    def g(self):\n"
        "        import pkg.sub.c.deep\n"
    )
    found = imports_of(source, "pkg.sub.d", False, known)
    assert sorted(found) == [("pkg", 3), ("pkg", 6), ("pkg.a", 2), ("pkg.b", 3), ("pkg.sub.c", 5), ("pkg.sub.c", 9)]
    assert imports_of("from . import c\n", "pkg.sub", True, known) == [("pkg.sub.c", 1)]


def test_cycles_are_found():
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
