"""The architecture holds: imports point down the layers, and nothing is built at import time.

The layers and the other import rules are import-linter contracts in
``pyproject.toml`` (``[tool.importlinter]``); ``lint-imports`` (a kept
tool) checks them. docs/architecture.md draws the same layers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "ivr", "desktop", "queues", "cases", "metrics", "dialplans", "core")


def lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a test dependency (pyproject.toml [test])"
    return subprocess.run([exe, "--no-cache", str(config)], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_every_import_points_down_the_layers():
    result = lint_imports(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_layers_are_the_documented_ones():
    linter = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert tuple(linter["root_packages"]) == PACKAGES
    layers = next(c for c in linter["contracts"] if c["type"] == "layers")
    assert layers["layers"] == ["app", "ivr | desktop", "queues | cases", "metrics | dialplans", "core"]
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for package in PACKAGES:
        assert f"{package}/" in architecture, package


def _lint_with(tmp_path, module: str, line: str):
    """The contracts on a copy of the tree where ``module`` (a path) gains ``line``."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / module).write_text((ROOT / module).read_text() + "\n" + line + "\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return lint_imports(tmp_path, tmp_path / "pyproject.toml")


def test_an_upward_import_breaks_the_build(tmp_path):
    """The same contract on a copy of the tree with one import pointing up fails."""
    result = _lint_with(tmp_path, "core/privacy.py", "from queues.waiting import WaitingTracker  # up")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "core.privacy -> queues.waiting" in result.stdout


def test_cases_and_queues_are_independent_of_each_other(tmp_path):
    """Siblings in one layer: a case module importing the queue side fails."""
    result = _lint_with(tmp_path, "cases/store.py", "from queues.priority import hash_caller  # sideways")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "cases.store -> queues.priority" in result.stdout


def test_nothing_is_built_at_import_time():
    """Importing every module builds no metric, registry, Redis client or event
    loop, and leaves prometheus_client's process-wide switches alone: that is
    each composition root's job (app/engine.py, app/tools.py, app/classic_agi.py)."""
    # cases/migrations holds Alembic's scripts, run by Alembic, not imported.
    modules = sorted({".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                      for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                      if "migrations" not in p.relative_to(ROOT).parts})
    script = textwrap.dedent(f"""
        import importlib, json
        import prometheus_client, prometheus_client.metrics as pm
        import redis, redis.asyncio
        built = []
        def spy(cls):
            init = cls.__init__
            def wrapped(self, *a, **kw):
                built.append(cls.__name__)
                init(self, *a, **kw)
            cls.__init__ = wrapped
        for cls in (prometheus_client.CollectorRegistry, prometheus_client.Counter, prometheus_client.Gauge,
                    prometheus_client.Histogram, redis.Redis, redis.asyncio.Redis):
            spy(cls)
        before = len(list(prometheus_client.REGISTRY.collect()))
        for name in {modules!r}:
            importlib.import_module(name)
        print(json.dumps({{"built": built, "created_series_on": pm._use_created,
                          "default_registry_grew": len(list(prometheus_client.REGISTRY.collect())) - before}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"built": [], "created_series_on": True, "default_registry_grew": 0}, report

