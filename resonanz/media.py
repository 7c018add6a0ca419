"""Files customers and agents send: stored under `var/media`, served at `/media/{name}`.

Names are random 128-bit tokens. Who may fetch a file (docs/security.md, "Media"):
- a picture an agent sent (`save(..., shared=True)`) is a capability URL: anyone with the name,
  because the web chat customer's browser and Twilio fetch it without a login;
- a file a customer sent (the default) is served to logged-in agents only; its name starts with
  `in-`. Files stored before this rule have no prefix and stay capability URLs.

What is served inline: only a file whose first bytes are a PNG, JPEG, GIF or WebP signature
(checked with `filetype`), with that real type; anything else is a download
(`application/octet-stream`, `Content-Disposition: attachment`), whatever type the sender
declared. Every response carries `Content-Security-Policy: default-src 'none'; sandbox` and
`X-Content-Type-Options: nosniff`, so a stored file never runs as a page on our origin.

Stored URLs are relative (`/media/<name>`) unless `public_url` is configured: never built from a
request's Host header, which the client chooses.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

import filetype
from PIL import Image, UnidentifiedImageError

from connectors.base import Attachment

# Customer uploads larger than this are refused by the connector (and the customer told).
MAX_MEDIA_BYTES = 16 * 1024 * 1024

IMAGE_TYPES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}
# Other declared types keep a recognisable extension (they are downloads either way).
_EXTENSIONS = {"application/pdf": ".pdf", "audio/ogg": ".ogg", "audio/mpeg": ".mp3", "video/mp4": ".mp4", "text/plain": ".txt"}
PRIVATE_PREFIX = "in-"
SNIFF_BYTES = 262  # filetype reads at most this many bytes

SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'none'; sandbox", "X-Content-Type-Options": "nosniff"}


def sniff_image(head: bytes) -> str | None:
    """The real MIME type if the bytes start like a PNG, JPEG, GIF or WebP image, else None."""
    mime = filetype.guess_mime(bytes(head[:SNIFF_BYTES]))
    return mime if mime in IMAGE_TYPES else None


# An agent's picture (shown beside their name in the web chat): small, square-ish, no GIF.
MAX_AVATAR_BYTES = 1024 * 1024
AVATAR_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}  # MIME -> Pillow's format
MAX_AVATAR_SIDE = 4096
MAX_AVATAR_RATIO = 2.0  # the longer side at most twice the shorter


class AvatarRefused(ValueError):
    """Why bytes cannot be an agent's picture (a sentence for the agent)."""


def check_avatar(content: bytes) -> str:
    """The MIME type of an agent's picture, judged by its bytes (never the declared type), or
    AvatarRefused: not PNG, JPEG or WebP, not readable as one, or not square-ish. Only the header
    is decoded (no pixel data), so a small file that claims huge dimensions costs nothing."""
    mime = sniff_image(content)
    if mime not in AVATAR_TYPES:
        raise AvatarRefused("the picture must be PNG, JPEG or WebP")
    try:
        with Image.open(io.BytesIO(content), formats=[AVATAR_TYPES[mime]]) as img:
            width, height = img.size
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise AvatarRefused("the picture cannot be read as " + AVATAR_TYPES[mime]) from None
    if min(width, height) < 1 or max(width, height) > MAX_AVATAR_SIDE:
        raise AvatarRefused(f"the picture must be at most {MAX_AVATAR_SIDE} pixels wide and high")
    if max(width, height) > MAX_AVATAR_RATIO * min(width, height):
        raise AvatarRefused(f"the picture must be roughly square (it is {width}×{height} pixels)")
    return mime


class MediaStore:
    def __init__(self, directory: Path, public_url: str | None) -> None:
        self.directory = directory
        self.public_url = (public_url or "").rstrip("/")

    def save(self, content: bytes, mime_type: str | None, name: str | None = None, *, shared: bool = False) -> Attachment:
        """Store bytes. `shared`: anyone with the URL may fetch it (an agent's picture); otherwise
        only logged-in agents (what a customer sent). The URL is relative, or starts with the
        configured public URL."""
        declared = (mime_type or "application/octet-stream").split(";")[0].strip().lower()
        image = sniff_image(content)
        mime = image or declared
        ext = IMAGE_TYPES.get(image or "") or _EXTENSIONS.get(declared) or ".bin"
        stored = f"{'' if shared else PRIVATE_PREFIX}{secrets.token_urlsafe(16)}{ext}"
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / stored).write_bytes(content)
        # Only a checked image is shown as one; the declared type of anything else is kept for
        # the agent's information, but it is served as a download.
        return Attachment(kind="image" if image else "file", url=f"{self.public_url}/media/{stored}", mime_type=mime, name=name or stored)

    def delete(self, url: str | None) -> None:
        """Remove one of our stored files by its URL (nothing if it is not ours or is gone)."""
        path = self.local_path(url) if url else None
        if path is not None:
            path.unlink(missing_ok=True)

    @staticmethod
    def is_private(name: str) -> bool:
        return name.startswith(PRIVATE_PREFIX)

    def by_name(self, name: str) -> Path | None:
        """The stored file `name` (as served at /media/{name}), never outside the directory."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    def served_type(self, path: Path) -> str | None:
        """The image type to serve `path` inline with, or None: serve it as a download."""
        with path.open("rb") as f:
            return sniff_image(f.read(SNIFF_BYTES))

    def local_path(self, url: str) -> Path | None:
        """The stored file behind one of our media URLs (absolute or relative), else None."""
        marker = "/media/"
        if marker not in url:
            return None
        prefix, _, name = url.rpartition(marker)
        if prefix not in ("", self.public_url) and not prefix.startswith(("http://", "https://")):
            return None
        return self.by_name(name)

    def absolute_url(self, url: str) -> str:
        """A URL a provider can fetch (needs `public_url` for our own files)."""
        if url.startswith(("http://", "https://")):
            return url
        return f"{self.public_url}{url}"
