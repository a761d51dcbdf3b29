"""``tidings.testing``: in-process servers for application tests, and the documented pytest plugin examples."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

from tidings import TopicClient, TopicClientAsync, TopicPublish, TopicSubscribe, TopicSubscriptionItem
from tidings.testing import run_server, run_server_async

DOCS = Path(__file__).parents[3] / "docs" / "sdk.md"
_TEST_FILE_BLOCK = re.compile(r"```python\n# (test_\w+\.py)\n(.*?)```", re.DOTALL)


def test_testing_run_server_serves_blocking_clients_and_cleans_up() -> None:
    threads_before = set(threading.enumerate())

    with run_server(create_caches=["orders"]) as server, TopicClient(server.endpoint) as client:
        subscription = client.subscribe("orders", "created")
        assert isinstance(subscription, TopicSubscribe.Subscription)
        published = client.publish("orders", "created", "order 1")
        item = next(subscription)
        data_dir = server.data_dir
        assert (server.host, server.endpoint) == ("127.0.0.1", f"127.0.0.1:{server.port}")

    assert published == TopicPublish.Success()
    assert isinstance(item, TopicSubscriptionItem.Text)
    assert item.value == "order 1"
    assert not data_dir.exists()
    assert not {thread for thread in set(threading.enumerate()) - threads_before if "_poll_wrapper" not in thread.name}


async def test_testing_run_server_async_keeps_a_given_data_dir(tmp_path: Path) -> None:
    async with run_server_async(create_caches=["c"], data_dir=tmp_path) as server:
        client = TopicClientAsync(server.endpoint)
        async with client:
            published = await client.publish("c", "t", "v")

    assert published == TopicPublish.Success()
    assert server.data_dir == tmp_path
    assert (tmp_path / "tidings.sqlite3").exists()  # the store stays for the caller


def test_testing_documented_example_tests_pass_with_the_installed_plugin(tmp_path: Path) -> None:
    examples = _TEST_FILE_BLOCK.findall(DOCS.read_text())
    assert {name for name, _ in examples} == {"test_orders.py", "test_with_momento.py"}
    for name, code in examples:
        (tmp_path / name).write_text(code)

    # A separate pytest process, as an application's test suite runs: the plugin comes from the entry point.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            "-W",
            "error",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
