"""The fast tier's guard against a broken import or config anywhere in the project, without paying
for the heavy libraries: every import statement of the project's own code is resolved statically
(project modules and the names taken from them exist; third-party packages are installed), and every
configuration file the project ships is loaded through the model that reads it at run time."""

from __future__ import annotations

import ast
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: where the project's own top-level packages live
PACKAGE_ROOTS = {"llmops": ROOT / "include", "llmops_airflow": ROOT / "plugins", "tests": ROOT}
#: modules of scripts/ and benchmarks/, imported by path from there
SCRIPT_MODULES = {p.stem for folder in ("scripts", "benchmarks") for p in (ROOT / folder).glob("*.py")}
CODE = sorted(p for folder in ("include/llmops", "plugins/llmops_airflow", "dags", "scripts", "benchmarks",
                               "include/evaluate_metrics", "tests")
              for p in (ROOT / folder).rglob("*.py"))


def _module_file(module: str) -> Path | None:
    top = module.split(".")[0]
    if top not in PACKAGE_ROOTS:
        return None
    base = PACKAGE_ROOTS[top].joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines at its top level (also inside top-level if/try blocks)."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody"):
                    visit(getattr(node, block, []) or [])
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return names


def _optional(tree: ast.Module) -> set[int]:
    """Line numbers of imports inside ``try: ... except ImportError`` (optional dependencies)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                or isinstance(h.type, ast.Tuple) and any(isinstance(e, ast.Name) and e.id in (
                    "ImportError", "ModuleNotFoundError") for e in h.type.elts)
                for h in node.handlers):
            lines.update(n.lineno for stmt in node.body for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom))
    return lines


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    optional = _optional(tree)
    found: list[str] = []
    where = path.relative_to(ROOT)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in optional:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            continue  # relative imports: none in the project
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        for module in modules:
            top = module.split(".")[0]
            if top in PACKAGE_ROOTS:
                target = _module_file(module)
                if target is None:
                    found.append(f"{where}:{node.lineno}: no module {module}")
                    continue
                if isinstance(node, ast.ImportFrom):
                    defined = _top_level_names(target)
                    if "__getattr__" in defined:  # the module makes some names on first use
                        continue
                    for alias in node.names:
                        if alias.name not in defined and _module_file(f"{module}.{alias.name}") is None:
                            found.append(f"{where}:{node.lineno}: {module} has no {alias.name}")
            elif top and top not in SCRIPT_MODULES and importlib.util.find_spec(top) is None:
                found.append(f"{where}:{node.lineno}: package {top} is not installed")
    return found


def test_the_checker_finds_a_broken_import(tmp_path: Path):
    bad = ROOT / "include" / "llmops" / "_integrity_probe.py"
    try:
        bad.write_text("from llmops.config import no_such_name\nimport llmops.no_such_module\nimport no_such_pkg_xyz\n")
        problems = _problems(bad)
    finally:
        bad.unlink()
    assert len(problems) == 3 and "no_such_name" in problems[0] and "no_such_module" in problems[1]
    assert "no_such_pkg_xyz" in problems[2]


def test_every_import_of_the_project_resolves():
    assert len(CODE) > 100
    problems = [p for path in CODE for p in _problems(path)]
    assert problems == []


def test_every_shipped_config_loads():
    import yaml

    from llmops.config import load_config
    from llmops.evaluation.suites import list_suites, load_suite
    from llmops.quality.suites import load_suite as load_expectations
    from llmops.training.args import parse_train_config

    configs = sorted((ROOT / "include/config").glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        load_config(path)
    suites = list_suites()
    assert "support_intents" in suites
    for name in suites:
        load_suite(name)
    for path in sorted((ROOT / "include/expectations").glob("*.yaml")):
        load_expectations(path.stem)
    base = {"model": {"name_or_path": "x"}, "data": {"versions": ["labeled-0"]}, "train": {"output_dir": "out"}}
    for path in sorted((ROOT / "include/deepspeed").glob("*.json")):
        json.loads(path.read_text())
        cfg = parse_train_config({**base, "train": {"output_dir": "out", "deepspeed": path.stem}})
        assert cfg.deepspeed_config(bf16=False)["zero_optimization"]["stage"] in (2, 3)
    settings = yaml.safe_load((ROOT / "airflow_settings.yaml").read_text())
    assert set(settings["airflow"]) >= {"connections", "pools", "variables"}


@pytest.mark.parametrize("path", sorted((ROOT / "include/evaluation/golden").glob("*.manifest.json")),
                         ids=lambda p: p.name)
def test_every_golden_set_matches_its_manifest(path: Path):
    from llmops.evaluation.golden import load_golden

    manifest = json.loads(path.read_text())
    rows, _ = load_golden(manifest["name"], manifest["version"])
    assert len(rows) == manifest["items"]
