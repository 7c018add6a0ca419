"""More channel behaviour: the Telegram webhook CLI, typed options on SMS, HELP, and WhatsApp's
24-hour rule without a template. Real clients against the local fakes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from connectors.base import ChannelAddress, DeliveryError, OutboundMessage
from connectors.testing import RecordingCore, context
from connectors.twilio import WhatsAppConnector
from resonanz.cli import main as cli
from resonanz.settings import Settings
from tests.conftest import LiveGateway
from connectors.fakes.telegram import FakeTelegram
from connectors.fakes.twilio import FakeTwilio
from tests.support.channels import conversation_of, new_phone, sent_to, twilio_post


async def test_set_webhook_registers_url_secret_and_update_types(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    async with FakeTelegram() as tg:
        config = tmp_path / "resonanz.yml"
        config.write_text(
            "connectors:\n  telegram:\n    token_env: TG_TOKEN\n    secret_env: TG_SECRET\n"
            f"    api_base_url: {tg.base_url}\n    file_base_url: {tg.base_file_url}\n"
        )
        monkeypatch.setenv("RESONANZ_CONFIG_FILE", str(config))
        monkeypatch.setenv("TG_TOKEN", tg.token)
        monkeypatch.setenv("TG_SECRET", "s3cret-value_1")
        monkeypatch.setenv("RESONANZ_PUBLIC_URL", "https://support.example.org")
        import asyncio

        assert await asyncio.to_thread(cli, ["telegram", "set-webhook"]) == 0
        assert tg.webhook is not None
        assert tg.webhook["url"] == "https://support.example.org/webhooks/telegram/webhook"
        assert tg.webhook["secret_token"] == "s3cret-value_1"
        assert set(tg.webhook["allowed_updates"]) == {"message", "callback_query"}
        monkeypatch.delenv("TG_SECRET")
        assert await asyncio.to_thread(cli, ["telegram", "set-webhook"]) == 2  # says which variable is missing


@pytest.mark.engine
async def test_sms_numbered_options_and_a_typed_number(live_gateway: LiveGateway, fake_twilio: FakeTwilio) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "Hallo")))[0] == 200
    bodies = "\n".join(m["Body"] for m in sent_to(tw, phone))
    assert "1. Selbst erledigen" in bodies and "2. Mit einer Person sprechen" in bodies
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "2")))[0] == 200
    assert (await conversation_of(gw, "sms", phone)).state == "queued"


@pytest.mark.engine
async def test_sms_help_is_answered_without_the_bot(live_gateway: LiveGateway, fake_twilio: FakeTwilio) -> None:
    gw, tw, phone = live_gateway, fake_twilio, new_phone()
    assert (await twilio_post(gw, tw, "sms", tw.sms_params(phone, "HILFE")))[0] == 200
    [reply] = sent_to(tw, phone)
    assert "STOPP" in reply["Body"] and "START" in reply["Body"]


async def test_whatsapp_outside_the_window_without_a_template_says_why(tmp_path: Any) -> None:
    async with FakeTwilio() as tw, aiohttp.ClientSession() as http:
        core = RecordingCore()  # knows no conversation: the customer never wrote, so no window
        config = {"account_sid": tw.account_sid, "auth_token": tw.auth_token, "from": "whatsapp:+4930123456",
                  "api_base_url": tw.base_url}
        connector = WhatsAppConnector(context(Settings(var_dir=tmp_path), http, core, config))
        await connector.startup()
        try:
            with pytest.raises(DeliveryError) as err:
                await connector.send(ChannelAddress("whatsapp", "+4915100000000"), OutboundMessage(text="Hallo", author="agent"))
        finally:
            await connector.shutdown()
        assert err.value.permanent and "24-hour window" in str(err.value) and "template" in str(err.value)
        assert tw.attempts == []
