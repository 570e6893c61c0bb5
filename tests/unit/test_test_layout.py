"""The test tree itself: pytest imports test modules by their basename
(rootdir-relative, no packages), so two test files with one name in
different folders break the collection of the whole suite (`make test`),
although each folder alone runs."""

from __future__ import annotations

from collections import Counter

from core.paths import REPO_ROOT


def test_every_test_module_has_its_own_name():
    names = Counter(p.name for p in (REPO_ROOT / "tests").rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []
