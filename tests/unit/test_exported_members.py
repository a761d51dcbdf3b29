"""The SDK's public surface is explicit: ``tidings.__all__`` is sorted and lists exactly its public names."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import tidings
import tidings.client
import tidings.testing

SDK_NAMES = [
    "ALL_CACHES",
    "ALL_TOPICS",
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT",
    "AuthClient",
    "AuthClientAsync",
    "CacheClient",
    "CacheClientAsync",
    "CacheInfo",
    "ConnectionOptions",
    "CreateCache",
    "DeleteCache",
    "DeleteWebhook",
    "DisposableTokenScope",
    "ErrorCode",
    "ErrorResponse",
    "GenerateDisposableToken",
    "GetWebhookSecret",
    "ListCaches",
    "ListWebhooks",
    "PutWebhook",
    "RotateWebhookSecret",
    "SubscriptionItem",
    "SubscriptionStatistics",
    "TopicClient",
    "TopicClientAsync",
    "TopicItem",
    "TopicLimits",
    "TopicNamePrefix",
    "TopicPublish",
    "TopicRole",
    "TopicScope",
    "TopicSubscribe",
    "TopicSubscriptionItem",
    "WebhookInfo",
]


def _public_names(module: types.ModuleType) -> set[str]:
    # pytest's assertion rewriting adds "@py_*" names to the modules of a distribution that ships a plugin;
    # dir() also lists what a lazy package (tidings) has not loaded yet.
    return {
        name
        for name in dir(module)
        if not name.startswith(("_", "@"))
        and not isinstance(getattr(module, name), types.ModuleType)
        and name not in {"annotations", "TYPE_CHECKING"}
    }


def test_exported_members_are_the_documented_sdk_names() -> None:
    assert tidings.__all__ == SDK_NAMES


@pytest.mark.parametrize("name", SDK_NAMES)
def test_exported_members_are_the_sdk_objects(name: str) -> None:
    assert getattr(tidings, name) is getattr(tidings.client, name)


def test_exported_members_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'TopicClinet'"):
        tidings.TopicClinet  # type: ignore[attr-defined]  # noqa: B018


def test_exported_members_load_nothing_when_pytest_loads_the_plugin() -> None:
    # pytest imports its plugins before coverage starts: whatever they import would count as never run.
    script = (
        "import sys, tidings.testing.pytest_plugin; "
        "print(sorted(m for m in sys.modules if m.startswith(('tidings.', 'grpc', 'google'))))"
    )

    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout

    assert loaded.strip() == "['tidings.testing', 'tidings.testing._server', 'tidings.testing.pytest_plugin']"


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
