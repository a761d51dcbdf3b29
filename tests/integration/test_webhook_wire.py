"""Our webhook messages encode byte for byte as the official Node SDK's generated types do."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tidings.protos import webhook_pb2 as pb

NODE_DIR = Path(__file__).resolve().parents[1] / "node"

_ENCODE = """
const {webhook} = require('@gomomento/generated-types');
const w = webhook.webhook;
const id = new w._WebhookId({cache_name: 'c', webhook_name: 'hook'});
const messages = {
  put: new w._PutWebhookRequest({webhook: new w._Webhook({webhook_id: id, topic_name: 't',
    destination: new w._WebhookDestination({post_url: 'http://127.0.0.1:9/x'})})}),
  put_response: new w._PutWebhookResponse({secret_string: 's3'}),
  delete: new w._DeleteWebhookRequest({webhook_id: id}),
  list: new w._ListWebhookRequest({cache_name: 'c'}),
  get_secret: new w._GetWebhookSecretRequest({cache_name: 'c', webhook_name: 'hook'}),
  get_secret_response: new w._GetWebhookSecretResponse({cache_name: 'c', webhook_name: 'hook', secret_string: 's3'}),
  rotate: new w._RotateWebhookSecretRequest({webhook_id: id}),
  rotate_response: new w._RotateWebhookSecretResponse({secret_string: 's4'}),
};
const out = {};
for (const [name, message] of Object.entries(messages)) out[name] = Buffer.from(message.serialize()).toString('hex');
console.log(JSON.stringify(out));
"""


def test_webhook_messages_encode_as_the_node_sdk_does() -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the official Node SDK tests"
    webhook_id = pb._WebhookId(cache_name="c", webhook_name="hook")
    ours = {
        "put": pb._PutWebhookRequest(
            webhook=pb._Webhook(
                webhook_id=webhook_id,
                topic_name="t",
                destination=pb._WebhookDestination(post_url="http://127.0.0.1:9/x"),
            )
        ),
        "put_response": pb._PutWebhookResponse(secret_string="s3"),
        "delete": pb._DeleteWebhookRequest(webhook_id=webhook_id),
        "list": pb._ListWebhookRequest(cache_name="c"),
        "get_secret": pb._GetWebhookSecretRequest(cache_name="c", webhook_name="hook"),
        "get_secret_response": pb._GetWebhookSecretResponse(cache_name="c", webhook_name="hook", secret_string="s3"),
        "rotate": pb._RotateWebhookSecretRequest(webhook_id=webhook_id),
        "rotate_response": pb._RotateWebhookSecretResponse(secret_string="s4"),
    }

    result = subprocess.run([node, "-e", _ENCODE], cwd=NODE_DIR, capture_output=True, text=True, check=True, timeout=60)

    theirs = json.loads(result.stdout)
    assert theirs == {name: message.SerializeToString().hex() for name, message in ours.items()}
