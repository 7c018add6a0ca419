"""Issue #8 item 8: agent pictures up to the documented 5 MB, JSON 413s, media served safely and
only to whom it is for, and no request Host header in stored media URLs. Real app on a real port,
real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import io

from aiohttp import FormData

from resonanz.media import MediaStore
from tests.support.desk import Desk, desk  # noqa: F401 - the fixture

__all__ = ["desk"]

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"
HTML = b"<!doctype html><script>alert(document.cookie)</script>"
CSP = "default-src 'none'; sandbox"


async def _owned(desk: Desk, sender: str, email: str) -> tuple[str, dict[str, str]]:
    await desk.agent(email, status="away")
    auth = await desk.login(email)
    r = await desk.customer(sender, "Ich will einen Menschen sprechen")
    hid = (await desk.handover_of(r["conversation_id"])).id
    assert (await desk.client.post(f"/api/v1/handovers/{hid}/accept", headers=auth)).status == 200
    return hid, auth


def _picture_form(content: bytes, text: str = "Bild") -> FormData:
    form = FormData()
    form.add_field("text", text)
    form.add_field("image", io.BytesIO(content), filename="p.png", content_type="image/png")
    return form


def _customer_file(desk: Desk, content: bytes, declared: str) -> str:
    """A file as a connector stores what a customer sent (Telegram, Twilio): the default save."""
    store = MediaStore(_media_dir(desk), None)
    return store.save(content, declared).url


def _media_dir(desk: Desk):  # noqa: ANN202
    from resonanz.app import SETTINGS

    return desk.client.app[SETTINGS].var_dir / "media"


async def test_an_agent_picture_of_two_megabytes_is_accepted(desk: Desk) -> None:
    hid, auth = await _owned(desk, "pic-2mb", "pic2@x.de")
    picture = PNG + b"\x00" * (2 * 1024 * 1024)
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, data=_picture_form(picture))
    assert resp.status == 201, await resp.text()
    [attachment] = (await resp.json())["message"]["attachments"]
    served = await desk.client.get(attachment["url"])
    assert served.status == 200 and await served.read() == picture


async def test_a_picture_over_the_limit_gets_a_json_413(desk: Desk) -> None:
    hid, auth = await _owned(desk, "pic-6mb", "pic6@x.de")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, data=_picture_form(PNG + b"\x00" * (6 * 1024 * 1024)))
    assert resp.status == 413
    assert resp.content_type == "application/json"
    assert "5 MB" in (await resp.json())["error"]


async def test_every_too_large_body_gets_a_json_413(desk: Desk) -> None:
    hid, auth = await _owned(desk, "big-json", "bigjson@x.de")
    big = b'{"text": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    for path in (f"/api/v1/handovers/{hid}/notes", f"/api/v1/handovers/{hid}/close", "/api/v1/login"):
        resp = await desk.client.post(path, headers={**auth, "Content-Type": "application/json"}, data=big)
        assert resp.status == 413, path
        assert resp.content_type == "application/json", path
        assert "error" in await resp.json()


async def test_a_webp_picture_is_accepted_and_a_fake_picture_refused(desk: Desk) -> None:
    hid, auth = await _owned(desk, "pic-webp", "webp@x.de")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, data=_picture_form(WEBP + b"\x00" * 32))
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["message"]["attachments"][0]["mime_type"] == "image/webp"
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, data=_picture_form(HTML))
    assert resp.status == 400 and "PNG" in (await resp.json())["error"]


async def test_customer_html_is_a_sandboxed_download_never_a_page(desk: Desk) -> None:
    await desk.agent("reader@x.de")
    auth = await desk.login("reader@x.de")
    for declared in ("text/html", "image/png", "image/svg+xml", None):
        url = _customer_file(desk, HTML, declared)
        resp = await desk.client.get(url, headers=auth)
        assert resp.status == 200, declared
        assert resp.headers["Content-Type"] == "application/octet-stream", declared
        assert resp.headers["Content-Disposition"].startswith("attachment"), declared
        assert resp.headers["Content-Security-Policy"] == CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_checked_customer_picture_is_served_inline_with_its_real_type(desk: Desk) -> None:
    await desk.agent("viewer@x.de")
    auth = await desk.login("viewer@x.de")
    url = _customer_file(desk, PNG, "text/html")  # the declared type is a lie; the bytes are a PNG
    resp = await desk.client.get(url, headers=auth)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/png"
    assert not resp.headers.get("Content-Disposition", "inline").startswith("attachment")
    assert resp.headers["Content-Security-Policy"] == CSP and resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_customer_files_need_an_agent_login_agent_pictures_do_not(desk: Desk) -> None:
    url = _customer_file(desk, PNG, "image/png")
    resp = await desk.client.get(url)
    assert resp.status == 401 and resp.content_type == "application/json"
    assert resp.headers["Content-Security-Policy"] == CSP
    # The web chat customer (and Twilio) fetch an agent's picture without any login.
    hid, auth = await _owned(desk, "pic-public", "public@x.de")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, data=_picture_form(PNG))
    url = (await resp.json())["message"]["attachments"][0]["url"]
    resp = await desk.client.get(url)
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
    missing = await desk.client.get("/media/nothing-here.png")
    assert missing.status == 404 and missing.headers["X-Content-Type-Options"] == "nosniff"


async def test_stored_media_urls_never_come_from_the_host_header(desk: Desk) -> None:
    hid, auth = await _owned(desk, "pic-host", "host@x.de")
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers={**auth, "Host": "evil.example"},
                                  data=_picture_form(PNG))
    assert resp.status == 201, await resp.text()
    url = (await resp.json())["message"]["attachments"][0]["url"]
    assert "evil.example" not in url and url.startswith("/media/")
    assert all("evil.example" not in str(a.get("url")) for m in await desk.outbound("pic-host") for a in m.get("attachments", []))


async def test_a_malformed_or_unexpected_multipart_body_is_a_400(desk: Desk) -> None:
    hid, auth = await _owned(desk, "pic-bad", "picbad@x.de")
    bodies = [
        ("multipart/form-data", b"--x\r\n\r\n"),  # no boundary
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"image\r\n\r\nabc\r\n--x--\r\n"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nabc\r\n--x--\r\n"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\n\xff\xfe\r\n--x--\r\n"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n"
                                            b"--x\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nabc\r\n--x--\r\n"),
    ]
    for content_type, body in bodies:
        resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers={**auth, "Content-Type": content_type}, data=body)
        assert resp.status == 400, (body, resp.status, await resp.text())
        assert "error" in await resp.json()
    resp = await desk.client.post(f"/api/v1/handovers/{hid}/messages", headers=auth, data=_picture_form(PNG, text="x" * 5000))
    assert resp.status == 400 and "4096" in (await resp.json())["error"]
