"""Shared fixtures: no test leaves a child process behind, even when it fails."""
from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


@pytest.fixture(autouse=True)
def reap_children():
    """Kill and join whatever children a test left running."""
    yield
    import gomp
    for p in gomp.active_children():
        try:
            p.kill()
            p.join(5)
        except Exception:
            pass
