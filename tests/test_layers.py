"""Layers one way: no module of `consumer/` imports from a layer above its own.

Every module is parsed with `ast` (imports inside functions count too: they
are dependencies all the same) and mapped to a layer, bottom to top:

- core: the vocabulary and leaf utilities every layer may use (`core.py`,
  `text.py`, `events/redact.py`, `backoff.py`, `tuning.py`, `clock.py`);
- events: the pure event code (`events/`);
- store: set-based writes and the schema (`store/`): it writes what it is given;
- pipeline: parse and commit a batch (`pipeline.py`);
- sources: where inputs come from (`sources/`);
- services: what runs on top (worker, replay, committer, the quarantine,
  status, readiness, privacy, tokens, reports, metrics, logs, the console, settings, the spool);
- api: the HTTP servers: the Reports API (`api/`) and the HTTPS receiver (`receiver/`);
- commands: the CLI's commands (`commands/`);
- cli: the entry point (`cli.py`, `__main__.py`, the settings documentation).

A module may import from its own layer and the layers below it. A new
module must be given a layer here; a violation is printed as
"path:line: module (layer) imports target (layer)".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "consumer"

# Bottom to top. "name.*" is a package and everything in it; a plain name is that module only.
# The most specific entry wins: events/redact.py is core although events/ is one layer up.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("consumer", "consumer.core", "consumer.text", "consumer.events.redact", "consumer.backoff",
              "consumer.tuning", "consumer.clock")),
    ("events", ("consumer.events.*",)),
    ("store", ("consumer.store.*",)),
    ("pipeline", ("consumer.pipeline",)),
    ("sources", ("consumer.sources.*",)),
    ("services", ("consumer.committer", "consumer.parallel", "consumer.replay", "consumer.worker", "consumer.hooks", "consumer.inbox",
                  "consumer.observability", "consumer.quarantine", "consumer.status", "consumer.privacy",
                  "consumer.tokens", "consumer.readiness", "consumer.spool", "consumer.reports.*", "consumer.dashboard", "consumer.dashboard.*", "consumer.summary", "consumer.synthetic", "consumer.console",
                  "consumer.logs", "consumer.config", "consumer.settings_flags")),
    ("api", ("consumer.api.*", "consumer.receiver.*")),
    ("commands", ("consumer.commands.*",)),
    ("cli", ("consumer.cli", "consumer.__main__", "consumer.settings_docs")),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


@dataclass(frozen=True)
class Import:
    module: str
    path: Path
    line: int
    target: str

    def __str__(self) -> str:
        where = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{where}:{self.line}: {self.module} ({layer_of(self.module)}) imports {self.target} ({layer_of(self.target)})"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


MODULES = all_modules()


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for name, patterns in LAYERS:
        for pattern in patterns:
            if pattern.endswith(".*"):
                package = pattern[:-2]
                matches = module == package or module.startswith(package + ".")
                specificity = len(package)
            else:
                matches = module == pattern
                specificity = len(pattern) + 1  # a module named outright beats its package's pattern
            if matches and (best is None or specificity > best[0]):
                best = (specificity, name)
    return best[1] if best else None


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, path: Path) -> list[Import]:
    """Every import of a `consumer` module in `path`, at any depth (functions, `if TYPE_CHECKING:` blocks)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, path, node)
            # `from consumer.events import course` imports the module consumer.events.course.
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source for alias in node.names]
        else:
            continue
        found += [Import(module, path, node.lineno, target) for target in targets
                  if target == "consumer" or target.startswith("consumer.")]
    return found


def all_imports() -> list[Import]:
    return [found for module, path in MODULES.items() for found in imports_of(module, path)]


def upward(imports: list[Import]) -> list[Import]:
    """The imports from a layer above the importer's (a module with no layer is test_every_module_has_a_layer's)."""
    ranks = [(RANK.get(layer_of(found.module)), RANK.get(layer_of(found.target)), found) for found in imports]
    return [found for low, high, found in ranks if low is not None and high is not None and low < high]


def test_every_module_has_a_layer():
    missing = [f"{path.relative_to(ROOT)} ({module})" for module, path in MODULES.items() if layer_of(module) is None]
    assert not missing, "give these modules a layer in LAYERS (tests/test_layers.py):\n" + "\n".join(missing)


def test_every_import_names_a_module_that_exists():
    unknown = [str(found) for found in all_imports() if found.target not in MODULES]
    assert not unknown, "imports of modules that do not exist:\n" + "\n".join(unknown)


def test_no_module_imports_from_a_layer_above_its_own():
    violations = [found for found in upward(all_imports())]
    assert not violations, "imports from a layer above (move the code down, or the import up):\n" + "\n".join(
        map(str, violations))


# What the pipeline decides (which rows win, what a rejection is, what counts as applied), by module and name.
PIPELINE_DECISIONS = {
    "consumer.events.merge": None, "consumer.events.parse": None, "consumer.pipeline": None,  # None: any name
    "consumer.events.registry": {"PRIMARY_KINDS", "family"},
    "consumer.core": {"Input", "Outcome", "Tracked", "Ignored", "Rejected", "Counts"},
}


def decisions_in(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module in PIPELINE_DECISIONS:
            names = PIPELINE_DECISIONS[node.module]
            found += [f"{path}:{node.lineno}: {node.module}.{alias.name}" for alias in node.names
                      if names is None or alias.name in names]
    return found


def test_the_store_writes_what_it_is_given():
    """The store never sees an input or an outcome, and never decides which rows win or what is applied."""
    found = [line for module, path in MODULES.items() if layer_of(module) == "store" for line in decisions_in(path)]
    assert not found, "the store imports what the pipeline decides:\n" + "\n".join(found)


@pytest.mark.parametrize("source", ["from consumer.core import Input\n", "from consumer.events.merge import newest_per_key\n",
                                    "def f():\n    from consumer.events.registry import PRIMARY_KINDS\n"])
def test_a_store_module_importing_a_decision_is_found(tmp_path, source):
    path = tmp_path / "batch.py"
    path.write_text(source, encoding="utf-8")
    assert len(decisions_in(path)) == 1


# The checker itself, on made-up modules: each rule can fail.


def _check(tmp_path: Path, module: str, source: str) -> list[Import]:
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return upward(imports_of(module, path))


@pytest.mark.parametrize(("module", "source", "target"), [
    ("consumer.store.batch", "from consumer.pipeline import tally\n", "consumer.pipeline"),
    ("consumer.store.batch", "def f():\n    from consumer.pipeline import tally\n", "consumer.pipeline"),
    ("consumer.events.parse", "import consumer.store.tables\n", "consumer.store.tables"),
    ("consumer.events.parse", "from consumer import pipeline\n", "consumer.pipeline"),
    ("consumer.core", "from consumer.events import merge\n", "consumer.events.merge"),
    ("consumer.store.batch", "from ..pipeline import tally\n", "consumer.pipeline"),
    ("consumer.api.routes", "from consumer.cli import main\n", "consumer.cli"),
])
def test_an_upward_import_is_found_wherever_it_is(tmp_path, module, source, target):
    (found,) = _check(tmp_path, module, source)
    assert (found.module, found.target, found.line) == (module, target, source.count("\n"))


@pytest.mark.parametrize(("module", "source"), [
    ("consumer.pipeline", "from consumer.store.batch import write_batch\n"),
    ("consumer.events.parse", "from consumer.events.redact import redact_payload\nfrom consumer.core import Rejected\n"),
    ("consumer.store.upsert", "from consumer.store.copy import copy_rows\n"),
    ("consumer.cli", "from consumer.commands import api\n"),
])
def test_an_import_from_the_same_layer_or_below_is_allowed(tmp_path, module, source):
    assert _check(tmp_path, module, source) == []


def test_a_violation_names_the_file_line_and_both_layers(tmp_path):
    (found,) = _check(tmp_path, "consumer.store.batch", "\n\nfrom consumer.pipeline import tally\n")
    assert str(found).endswith(":3: consumer.store.batch (store) imports consumer.pipeline (pipeline)"), str(found)


def test_a_module_named_outright_beats_its_package():
    assert (layer_of("consumer.events.redact"), layer_of("consumer.events.parse"), layer_of("consumer")) == (
        "core", "events", "core")
    assert layer_of("consumer.something_new") is None
