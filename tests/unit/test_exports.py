"""The core's public surface is explicit: ``__all__`` lists exactly the public names of the package."""

from __future__ import annotations

import tidings.server.core as core


def test_core_exports_exactly_its_public_names() -> None:
    # Arrange
    # pytest's assertion rewriting adds "@py_*" names to the modules of a distribution that ships a plugin.
    public = {name for name in dir(core) if not name.startswith(("_", "@"))}

    # Act
    exported = core.__all__

    # Assert
    assert len(exported) == len(set(exported))
    assert set(exported) == public
