"""Every keylib example runs on both twins through the ``impl`` fixture."""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from acid import keylib


@pytest.fixture(params=["python", "c"], scope="module")
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The pure-Python or the C twin; in CI a missing C twin is a failure."""
    found = keylib.implementations().get(request.param)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the C twin acid._keylib was not built")
        pytest.skip("the C twin acid._keylib is not built")
    return found


@pytest.fixture(scope="module")
def c_twin() -> ModuleType:
    found = keylib.implementations().get("c")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the C twin acid._keylib was not built")
        pytest.skip("the C twin acid._keylib is not built")
    return found
