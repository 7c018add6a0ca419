"""Issue #8 item 3: the REST channel is for servers and carries a token.

- With `token_env` configured, every REST request (POST webhook, GET messages) needs
  `Authorization: Bearer <token>`; without it or with a wrong one: 401 JSON + WWW-Authenticate.
- Reachable from outside (host not loopback, or a non-loopback public URL) with REST enabled and
  no token: `resonanz run` and `resonanz check-config` refuse with one clear line; the loopback
  default of `make run` keeps working without a token.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from resonanz.app import create_app
from resonanz.config import ConfigError, connector_configs
from resonanz.settings import Settings
from tests.conftest import free_port
from tests.security.edge_support import REST_TOKEN, Edge, start_edge

RESONANZ = str(Path(sys.executable).parent / "resonanz")
WEBHOOK, MESSAGES = "/webhooks/rest/webhook", "/webhooks/rest/messages"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge(tmp_path_factory: pytest.TempPathFactory, fake_telegram: Any, fake_twilio: Any) -> AsyncIterator[Edge]:
    async for e in start_edge("sqlite", tmp_path_factory.mktemp("edge-auth"), fake_telegram, fake_twilio):
        yield e


def _message(sender: str) -> bytes:
    return json.dumps({"sender": sender, "message": "Wann haben Sie geöffnet?"}).encode()


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong-token-0123456789", f"Basic {REST_TOKEN}", f"Bearer {REST_TOKEN}x",
     f"Bearer {REST_TOKEN[:-1]}", "Bearer " + "ä" * 20],
    ids=["none", "empty", "scheme-only", "blank", "wrong", "basic", "longer", "shorter", "non-ascii"],
)
async def test_every_rest_request_without_the_right_token_gets_401(edge: Edge, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path, body in (("POST", WEBHOOK, _message("auth-victim")), ("GET", MESSAGES + "?sender=auth-victim", None)):
        async with edge.http.request(method, edge.url(path), data=body,
                                     headers={**headers, "Content-Type": "application/json"}) as r:
            assert r.status == 401, (method, await r.text())
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert "bearer token" in (await r.json())["error"]


async def test_the_right_token_reads_and_writes(edge: Edge) -> None:
    good = {"Authorization": f"Bearer {REST_TOKEN}"}
    async with edge.http.post(edge.url(WEBHOOK), data=_message("auth-ok"), headers=good) as r:
        assert r.status == 200, await r.text()
        conversation_id = (await r.json())["conversation_id"]
    # The scheme is case-insensitive (RFC 7235).
    async with edge.http.get(edge.url(MESSAGES), params={"sender": "auth-ok"},
                             headers={"Authorization": f"bearer {REST_TOKEN}"}) as r:
        assert r.status == 200 and (await r.json())["conversation_id"] == conversation_id
    # Nothing leaked to the stranger who tried before: the conversation exists, the 401s stand.
    async with edge.http.get(edge.url(MESSAGES), params={"sender": "auth-ok"}) as r:
        assert r.status == 401


# --- the start-up rule -----------------------------------------------------------------------------


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(**{"config_file": tmp_path / "none.yml", "connectors": ("rest", "webchat"), **values})


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"host": "0.0.0.0"}, "RESONANZ_HOST=0.0.0.0"),
        ({"host": "::"}, "RESONANZ_HOST=::"),
        ({"host": "192.0.2.7"}, "RESONANZ_HOST=192.0.2.7"),
        ({"host": "127.0.0.1", "public_url": "https://support.example"}, "RESONANZ_PUBLIC_URL=https://support.example"),
        ({"connectors": ("rest", "sms"), "connector_options": {"sms": {"public_url": "https://sms.example"}}},
         "connectors.sms.public_url=https://sms.example"),
    ],
)
def test_reachable_from_outside_without_a_token_is_refused(tmp_path: Path, values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        connector_configs(_settings(tmp_path, **values))
    message = str(err.value)
    assert reason in message and "connectors.rest.token_env" in message and "\n" not in message


@pytest.mark.parametrize(
    "values",
    [{}, {"host": "127.0.0.1"}, {"host": "127.3.4.5"}, {"host": "::1"}, {"host": "localhost"},
     {"host": "127.0.0.1", "public_url": "http://127.0.0.1:8080"}, {"host": "localhost", "public_url": "http://localhost:8080"}],
)
def test_loopback_only_needs_no_token(tmp_path: Path, values: dict[str, Any]) -> None:
    assert "rest" in connector_configs(_settings(tmp_path, **values))


def test_the_make_run_default_needs_no_token() -> None:
    """resonanz.yml as shipped, with the default settings `make run` uses."""
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert "rest" in connector_configs(settings.model_copy(update={"public_url": None}))


def test_a_token_makes_an_exposed_gateway_acceptable(tmp_path: Path) -> None:
    settings = _settings(tmp_path, host="0.0.0.0", connector_options={"rest": {"token": REST_TOKEN}})
    assert connector_configs(settings)["rest"]["token"] == REST_TOKEN


@pytest.mark.parametrize("token", ["short", "x" * 15, "has a space in it 0123", "tab\tinside-0123456789", "ümlaut-0123456789abc"])
def test_a_weak_or_unsendable_token_is_refused(tmp_path: Path, token: str) -> None:
    with pytest.raises(ConfigError, match="at least 16 printable ASCII"):
        connector_configs(_settings(tmp_path, connector_options={"rest": {"token": token}}))


async def test_create_app_refuses_an_exposed_rest_channel_without_token(tmp_path: Path) -> None:
    settings = _settings(tmp_path, host="0.0.0.0", DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ConfigError, match="no token"):
        await create_app(settings)


# --- the command line: one clear line, no traceback ----------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESONANZ_")}
    yml = tmp_path / "resonanz.yml"
    yml.write_text("connectors:\n  rest: {}\n")
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.db'}",
        RESONANZ_VAR_DIR=str(tmp_path / "var"),
        RESONANZ_PORT=str(free_port()),
        RESONANZ_ENGINE_PORT=str(free_port()),
        RESONANZ_CONFIG_FILE=str(yml),
    )
    env.update(extra)
    return env


async def _resonanz(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        RESONANZ, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()  # it started serving instead of refusing
        await proc.wait()
        raise AssertionError(f"resonanz {' '.join(args)} did not stop within 60 s") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("command", [["run", "--no-train"], ["check-config"]])
async def test_cli_refuses_exposed_rest_without_token_in_one_line(tmp_path: Path, command: list[str]) -> None:
    env = _env(tmp_path, RESONANZ_HOST="0.0.0.0", RESONANZ_PUBLIC_URL="https://support.example")
    code, out, err = await _resonanz(env, *command)
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    [line] = [ln for ln in err.splitlines() if "connectors.rest.token_env" in ln]
    assert "RESONANZ_HOST=0.0.0.0" in line


async def test_cli_names_a_missing_token_variable(tmp_path: Path) -> None:
    env = _env(tmp_path, RESONANZ_HOST="0.0.0.0")
    Path(env["RESONANZ_CONFIG_FILE"]).write_text("connectors:\n  rest:\n    token_env: EDGE_TEST_REST_TOKEN\n")
    env.pop("EDGE_TEST_REST_TOKEN", None)
    code, _out, err = await _resonanz(env, "run", "--no-train")
    assert code == 2 and "Traceback" not in err
    assert "environment variable EDGE_TEST_REST_TOKEN (token_env) is not set" in err
    # With the variable set, check-config has no REST problem left.
    code, _out, err = await _resonanz({**env, "EDGE_TEST_REST_TOKEN": REST_TOKEN}, "check-config")
    assert "connector 'rest'" not in err
