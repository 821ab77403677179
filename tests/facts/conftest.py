"""Fixtures for the fact tests: the repository root on sys.path, and reading a case file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

CASES_DIR = Path(__file__).resolve().parent
ROOT = CASES_DIR.parent.parent

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def load_case():
    def load(path: Path) -> dict:
        with path.open() as f:
            return json.load(f)

    return load
