"""The SDK's public surface is explicit: ``tidings.__all__`` is sorted and lists exactly its public names."""

from __future__ import annotations

import types

import pytest

import tidings
import tidings.client
import tidings.testing

SDK_NAMES = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT",
    "CacheClient",
    "CacheClientAsync",
    "CacheInfo",
    "CreateCache",
    "DeleteCache",
    "ErrorCode",
    "ErrorResponse",
    "ListCaches",
    "SubscriptionItem",
    "SubscriptionStatistics",
    "TopicClient",
    "TopicClientAsync",
    "TopicItem",
    "TopicLimits",
    "TopicPublish",
    "TopicSubscribe",
    "TopicSubscriptionItem",
]


def _public_names(module: types.ModuleType) -> set[str]:
    # pytest's assertion rewriting adds "@py_*" names to the modules of a distribution that ships a plugin.
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith(("_", "@")) and not isinstance(value, types.ModuleType) and name != "annotations"
    }


def test_exported_members_are_the_documented_sdk_names() -> None:
    assert tidings.__all__ == SDK_NAMES


@pytest.mark.parametrize("module", [tidings, tidings.client, tidings.testing], ids=lambda module: module.__name__)
def test_exported_members_are_sorted_unique_and_complete(module: types.ModuleType) -> None:
    exported = module.__all__

    assert exported == sorted(exported, key=lambda name: (not name.isupper(), name))
    assert len(exported) == len(set(exported))
    assert set(exported) == _public_names(module)


@pytest.mark.parametrize("name", SDK_NAMES)
def test_exported_members_have_docstrings(name: str) -> None:
    member = getattr(tidings, name)
    if isinstance(member, type):
        assert member.__doc__, name
        for attribute, value in vars(member).items():
            if isinstance(value, type) and not attribute.startswith("_"):
                assert value.__doc__, f"{name}.{attribute}"
