"""Files customers and agents send: stored under `var/media`, served at `/media/{name}`.

Names are random 128-bit tokens (capability URLs): a provider such as Twilio must be able to
fetch an agent's picture without a login, and nobody can enumerate them. Content is served with
`nosniff` and a `default-src 'none'` CSP so that a file can never run as a page.
"""

from __future__ import annotations

import mimetypes
import secrets
from pathlib import Path

from connectors.base import Attachment

# Customer uploads larger than this are refused by the connector (and the customer told).
MAX_MEDIA_BYTES = 16 * 1024 * 1024

_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "audio/ogg": ".ogg",
    "video/mp4": ".mp4",
    "text/plain": ".txt",
}


class MediaStore:
    def __init__(self, directory: Path, public_url: str | None) -> None:
        self.directory = directory
        self.public_url = (public_url or "").rstrip("/")

    def save(self, content: bytes, mime_type: str | None, name: str | None = None, *, base_url: str | None = None) -> Attachment:
        """Store bytes. The attachment's URL starts with `base_url` if given, else the public URL
        (relative when neither is known)."""
        mime = (mime_type or "application/octet-stream").split(";")[0].strip().lower()
        ext = _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ".bin"
        stored = f"{secrets.token_urlsafe(16)}{ext}"
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / stored).write_bytes(content)
        kind = "image" if mime.startswith("image/") else "file"
        base = (base_url or "").rstrip("/") or self.public_url
        return Attachment(kind=kind, url=f"{base}/media/{stored}", mime_type=mime, name=name or stored)

    def by_name(self, name: str) -> Path | None:
        """The stored file `name` (as served at /media/{name}), never outside the directory."""
        if not name or "/" in name or name.startswith("."):
            return None
        path = self.directory / name
        return path if path.is_file() else None

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
