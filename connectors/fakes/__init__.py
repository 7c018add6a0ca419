"""Local fakes of external providers: real aiohttp servers on 127.0.0.1:0, driven by the real
client libraries (python-telegram-bot, twilio). See ``telegram`` and ``twilio`` in this package."""

from connectors.fakes.telegram import (
    Call,
    FakeTelegram,
    UploadedFile,
    callback_update,
    document_update,
    location_update,
    photo_update,
    start_update,
    text_update,
)
from connectors.fakes.twilio import FakeTwilio, RedirectingAsyncHttpClient

__all__ = [
    "Call",
    "FakeTelegram",
    "FakeTwilio",
    "RedirectingAsyncHttpClient",
    "UploadedFile",
    "callback_update",
    "document_update",
    "location_update",
    "photo_update",
    "start_update",
    "text_update",
]
