"""schemathesis against the OpenAPI document: no server errors, and every response is what it says.

The document is loaded from ``docs/openapi.json``, which another test checks is what ``/openapi.json`` serves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from schemathesis.checks import positive_data_acceptance

from tests.integration._server import ServerProcess

DOCUMENT = json.loads((Path(__file__).parents[3] / "docs" / "openapi.json").read_text())

# The event stream never ends by itself; its behaviour has tests of its own (test_stream.py).
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(operation_id="stream")


@schema.parametrize()
@hypothesis.settings(max_examples=20, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case[Any], short_server: ServerProcess) -> None:
    # Names are limited to 255 *bytes*, which the document cannot express (maxLength counts characters): a
    # long non-ASCII name the document allows is rightly refused, so "valid data is accepted" is not checked.
    case.call_and_validate(base_url=short_server.http_url, timeout=10, excluded_checks=[positive_data_acceptance])
