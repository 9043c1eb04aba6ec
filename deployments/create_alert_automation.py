"""Create the automation that turns context-cleaner's alert events into a notification.

    PREFECT_API_URL=http://127.0.0.1:4200/api \\
        python deployments/create_alert_automation.py --webhook-url https://hooks.example/...
    python deployments/create_alert_automation.py --slack-webhook-url - < slack-url.txt
    python deployments/create_alert_automation.py --block slack-webhook/team-alerts

The webhook URL is a secret (whoever has it can post to the channel), so it is kept
as one: with ``--slack-webhook-url`` a ``SlackWebhook`` block named
``context-cleaner-alerts`` is saved (its URL a ``SecretStr``); with ``--webhook-url``
(any endpoint that takes a JSON POST) a ``CustomWebhookNotificationBlock`` of that name
whose URL is a template filled from its ``secrets`` (it POSTs
``{"text": subject + body}``); ``-`` as the URL reads it from stdin, so it stays out of
the shell's history. With ``--block`` an existing notification block
(``<block type>/<name>``) is used. Its id goes into each ``send-notification`` action of
``automations/migration-alerts.yaml``, and the automations there are created, replacing
ones of the same name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from uuid import UUID

import yaml

AUTOMATIONS = Path(__file__).parent / "automations" / "migration-alerts.yaml"
BLOCK_NAME = "context-cleaner-alerts"


def notification_block(args: argparse.Namespace) -> UUID:
    """The id of the notification block to send through (saved first for a webhook URL)."""
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

    if args.block:
        block = Block.load(args.block)
    elif args.slack_webhook_url:
        block = SlackWebhook(
            url=_secret(args.slack_webhook_url), allow_private_urls=args.allow_private_urls
        )
        block.save(BLOCK_NAME, overwrite=True)
    else:
        block = CustomWebhookNotificationBlock(
            name=BLOCK_NAME,
            url="{{webhook_url}}",  # filled from the secrets when a notification is sent
            method="POST",
            json_data={"text": "{{subject}}\n{{body}}"},
            allow_private_urls=args.allow_private_urls,
            secrets={"webhook_url": _secret(args.webhook_url)},
        )
        block.save(BLOCK_NAME, overwrite=True)
    return block._block_document_id  # type: ignore[return-value]


def _secret(value: str) -> str:
    """``value``, or the first line of stdin for ``-``."""
    return sys.stdin.readline().strip() if value == "-" else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--webhook-url", help="URL that accepts a JSON POST (Teams, ...); - reads it from stdin"
    )
    where.add_argument(
        "--slack-webhook-url", help="a Slack incoming-webhook URL; - reads it from stdin"
    )
    where.add_argument("--block", help="an existing notification block: <block type>/<name>")
    parser.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let the webhook block post to private or loopback addresses",
    )
    parser.add_argument("--file", type=Path, default=AUTOMATIONS, help="automations YAML")
    args = parser.parse_args(argv)

    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    block_id = notification_block(args)
    spec = yaml.safe_load(args.file.read_text())
    with get_client(sync_client=True) as client:
        for raw in spec["automations"]:
            for action in raw["actions"]:
                if action["type"] == "send-notification":
                    action["block_document_id"] = str(block_id)
            automation = AutomationCore.model_validate(raw)
            for old in client.read_automations_by_name(automation.name):
                client.delete_automation(old.id)
            created = client.create_automation(automation)
            print(f"created automation {automation.name!r} ({created}) -> block {block_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
