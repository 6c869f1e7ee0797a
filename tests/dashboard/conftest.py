"""Fixtures for the dashboard tests: a publication (the session's
``demo_publication``, built by the real pipelines) and AppTest runners.

``OUTCOMES_DASHBOARD_TEST_DB`` may name an existing publication to test
against instead (e.g. a bigger one); by default the demo one is built.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from .helpers import release_id_of

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture(scope="session", autouse=True)
def served_options():
    """Run the app in-process with the options ``outcomes serve`` uses."""
    from dashboard.server import apply_in_process

    apply_in_process()


@pytest.fixture(scope="session")
def publication(request) -> Path:
    override = os.environ.get("OUTCOMES_DASHBOARD_TEST_DB")
    if override:
        return Path(override)
    return request.getfixturevalue("demo_publication")


@pytest.fixture(scope="session")
def release_file(publication) -> Path:
    return Path(publication).resolve()


def _clear():
    from dashboard import queries

    queries.clear_caches()


_COMPONENTS: list = []


@pytest.fixture()
def make_app(monkeypatch, publication):
    """AppTest of dashboard/app.py reading ``db`` (default: the publication).

    Each AppTest object scans the installed packages for custom components
    (~1 s); the scan is done once and shared, as a server does at start-up."""

    def make(db: Path | None = None, page: str | None = None) -> AppTest:
        monkeypatch.setenv("OUTCOMES_DB", str(db or publication))
        _clear()
        at = AppTest.from_file(str(APP), default_timeout=120)
        if _COMPONENTS and hasattr(at, "_bidi_component_manager"):
            at._bidi_component_manager = _COMPONENTS[0]
        at.run()
        if not _COMPONENTS and getattr(at, "_bidi_component_manager", None) is not None:
            _COMPONENTS.append(at._bidi_component_manager)
        if page and page != "overview":
            at.switch_page(f"pages/{page}.py")
            at.run()
        return at

    yield make
    _clear()


@pytest.fixture()
def linked_publication(tmp_path, release_file) -> Path:
    """A publication laid out like production: var/outcomes.duckdb is a
    symlink to var/releases/<id>.duckdb (a copy of the demo release)."""
    from pipelines.framework import publication as pub

    var = tmp_path / "var"
    rdir = var / "releases"
    rdir.mkdir(parents=True)
    first = rdir / f"{release_id_of(release_file)}.duckdb"
    shutil.copyfile(release_file, first)
    link = var / "outcomes.duckdb"
    pub.switch_to(link, first)
    return link
