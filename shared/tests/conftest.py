"""Fixtures for the paperlab tests: the example package lives in tests/fixtures/example_pkg/src."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "example_pkg" / "src"


@pytest.fixture(scope="session")
def example_src() -> Path:
    """Put the example package on sys.path and $PYTHONPATH (for subprocesses)."""
    if str(EXAMPLE_SRC) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_SRC))
    parts = [str(EXAMPLE_SRC), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return EXAMPLE_SRC
