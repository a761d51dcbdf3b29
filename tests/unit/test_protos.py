"""The committed webhook wire modules are what `make protos` generates from webhook.proto."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

PROTOS = Path(__file__).resolve().parents[2] / "src" / "tidings" / "protos"


def test_generated_webhook_modules_match_the_proto(tmp_path: Path) -> None:
    exit_code = protoc.main(
        ["protoc", f"-I{PROTOS}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", str(PROTOS / "webhook.proto")]
    )

    assert exit_code == 0
    for name in ("webhook_pb2.py", "webhook_pb2.pyi"):
        assert (tmp_path / name).read_text() == (PROTOS / name).read_text(), f"{name} is stale: run `make protos`"
