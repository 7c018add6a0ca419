"""Typed settings, validated once at start-up. Secrets come from the environment only."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Settings that describe the bot (not the deployment) and may come from resonanz.yml's top level.
# The environment still wins; secrets and addresses never come from the file.
FILE_KEYS = frozenset({
    "actions", "texts", "customer_number_pattern", "handover_intents", "handover_skills",
    "handover_collect_customer_number", "fallback_intents", "fallback_confidence", "offer_choice_at_start",
    "review_confidence", "review_collect",
    "start_text",
    "fallback_actions",
    "timezone",
    "photo_intent",
})


class ConfigFileSettings(PydanticBaseSettingsSource):
    """The bot's settings from the configuration file (`config_file`, resonanz.yml), below the
    environment and explicit values. An unknown top-level key is an error, not silence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the whole file

    def __call__(self) -> dict[str, Any]:
        path = Path(self.current_state.get("config_file") or PROJECT_ROOT / "resonanz.yml")
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            return {}  # resonanz.config reports the file's syntax with its own message
        if not isinstance(data, dict):
            return {}
        unknown = set(data) - FILE_KEYS - {"connectors"}
        if unknown:
            raise ValueError(f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                             f"(known: connectors, {', '.join(sorted(FILE_KEYS))})")
        return {k: v for k, v in data.items() if k in FILE_KEYS and k not in self.current_state}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RESONANZ_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, dotenv_settings, file_secret_settings, ConfigFileSettings(settings_cls)

    # Where the gateway listens. Loopback by default; a reverse proxy terminates TLS in front.
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'var' / 'resonanz.db'}",
        validation_alias="DATABASE_URL",
    )

    # The Rasa engines. `engine_url` (one) or `engine_urls` (comma-separated, several) name
    # external engines; both empty means: the run command starts `engines` locally, on ports
    # engine_port, engine_port + 1, ... Turns are routed by a consistent hash (bot/engine_pool.py).
    engine_url: str | None = None
    engine_urls: Annotated[tuple[str, ...], NoDecode] = ()
    engines: int = Field(default=1, ge=1, le=32)
    engine_port: int = 5005
    # How often the gateway probes each engine, so that one that came back gets its senders back.
    engine_probe_seconds: float = Field(default=2.0, gt=0)
    engine_token: str = Field(default_factory=lambda: secrets.token_hex(24))
    engine_timeout: float = 10.0
    # How long a message waits for an engine that is still starting before the apology.
    engine_startup_wait: float = 120.0
    # Bound the engine-side tracker: a new engine session after this many turns (outside forms).
    engine_session_turns: int = 12

    # Token the engine presents when it calls the gateway's action server.
    action_token: str = Field(default_factory=lambda: secrets.token_hex(24))

    # Enabled channels, by registry name (see connectors/registry.py). Normally taken from the
    # `connectors:` section of resonanz.yml; RESONANZ_CONNECTORS (JSON list) overrides the choice.
    connectors: tuple[str, ...] = ("rest", "webchat")
    # Options per connector, instead of the file's (for tests and embedding).
    connector_options: dict[str, dict[str, Any]] = {}

    # The bot's custom actions: a module whose import registers them with `bot.actions.registry`
    # (the reference bot: `bot.reference.actions`, set in resonanz.yml). None: no custom actions.
    actions: str | None = None
    # System texts that replace or add to the catalogue (resonanz/texts.py): key -> {"de", "en"}.
    # The reference bot sets its name and the labels of its intents in resonanz.yml.
    texts: dict[str, dict[str, str]] = {}
    # What the bot hears when a customer starts a chat with a start command (Telegram's
    # `/start PAYLOAD`; the payload goes to the message metadata as `start_payload`). None: "/start".
    start_text: str | None = None
    # What the engine hears when a customer sends a picture (with or without a caption): this
    # intent as a payload ("/send_photo"), the pictures in the message metadata (`attachments`)
    # for the bot's actions to look at. None: the engine hears the caption or "[photo]".
    photo_intent: str | None = None

    max_message_chars: int = 4096
    fallback_intents: tuple[str, ...] = ("nlu_fallback", "out_of_scope")
    fallback_confidence: float = 0.4
    # Understood, but with less confidence than this: the message goes to the review queue
    # (resonanz.review) beside the not-understood ones. 0 collects only the not-understood.
    review_confidence: float = 0.7
    # Collect missed messages for review at all (the review queue, docs/review.md).
    review_collect: bool = True
    # Engine actions that mean "not understood" when the bot answers with them (Rasa's own
    # fallback; a bot adds its own in resonanz.yml). Such a turn counts like a fallback intent.
    fallback_actions: tuple[str, ...] = ("action_default_fallback",)
    # Intents the bot must never handle alone (reason recorded with the handover). `request_human`
    # is the intent of the start choice's "talk to a person" button; the bot adds its own in resonanz.yml.
    handover_intents: dict[str, str] = {"request_human": "customer_request"}
    # Before a complex matter (reason complex_matter) goes to a person, ask once for the customer
    # number if it is not known yet; whatever the customer answers, the next turn hands over.
    handover_collect_customer_number: bool = True
    # How a customer number looks (a regular expression; resonanz/customer_number.py). None: the
    # bot has no customer numbers (nothing is asked or looked for). The reference bot's is in resonanz.yml.
    customer_number_pattern: str | None = None
    # Step-up verification (bot/verification.py) before custom actions show or change account data:
    # how long a verified identity lasts in a conversation, and how many wrong answers are allowed
    # per conversation and per customer number (in a sliding window) before a person is offered.
    verification_ttl_minutes: float = 30.0
    verification_max_failures_per_conversation: int = 3
    verification_max_failures_per_number: int = 5
    verification_number_window_hours: float = 24.0
    # N not-understood turns in a row put the conversation in the queue (0 disables it).
    handover_after_fallbacks: int = 2
    # Frustration (0-1, handover/sentiment.py) from which an upset customer goes to a person (0: off).
    handover_upset_threshold: float = 0.6
    # Repeated anger: this many upset messages in a row (each at least `handover_upset_repeated`
    # frustration) also put the conversation in the queue (0: off).
    handover_upset_repeated: float = 0.3
    handover_upset_repeated_turns: int = 2
    # New conversations offer "do it myself" / "talk to a person" (buttons, or numbered options).
    offer_choice_at_start: bool = True
    # Which skill a handover needs, by reason or intent (anything else: "general").
    handover_skills: dict[str, str] = {}
    # Seconds an agent has to accept an offered conversation before it goes to the next agent.
    offer_timeout: float = 60.0
    # Ask for satisfaction (1-5) when an agent closes a conversation.
    satisfaction_survey: bool = True
    # The utility's time zone: times shown to customers (e.g. an outage's expected end) are local.
    timezone: str = "Europe/Berlin"

    # Data protection (docs/data-protection.md): conversations idle (with the bot, or closed) for
    # longer than this are deleted with their messages, media and tracker events (0: keep them);
    # every gateway checks every `retention_sweep_hours`.
    retention_days: int = Field(default=365, ge=0)
    retention_sweep_hours: float = Field(default=6.0, gt=0)
    # Linked in the short privacy notice a customer gets on first contact (None: no notice).
    privacy_url: str | None = None

    # Continue on another device or channel (resonanz/continuity.py, docs/configuration.md): how
    # long a continue code lives, how many redemptions one sender may try (`limits` notation,
    # counted in Redis when configured), the Telegram bot's username for the deep link
    # (t.me/<username>?start=<code>; None: no Telegram link) and the WhatsApp number for the
    # prefilled link (None: the WhatsApp connector's "from" number, if it has one).
    continue_code_minutes: float = Field(default=10.0, gt=0, le=24 * 60)
    continue_limit: str = "10/15minutes"
    continue_telegram_bot: str | None = None
    continue_whatsapp_number: str | None = None
    # The web chat's signed host identity: the embedding site passes a user id and
    # HMAC-SHA256(user id, this secret) as hex; a valid pair links the browser to that user's
    # customer on every device. None: signed identities are refused.
    webchat_identity_secret: str | None = None

    # The outbox: retries on timeouts, 5xx and 429 with exponential backoff (seconds).
    outbox_backoff_base: float = 1.0
    outbox_backoff_max: float = 300.0
    outbox_max_attempts: int = 8
    # How long a process may hold a message it is sending (longer than any provider call) before
    # others treat the send as interrupted; and how often each process sweeps for work whose
    # owner is gone (expired leases, retries that were scheduled in a process that died).
    outbox_lease_seconds: float = 120.0
    outbox_sweep_seconds: float = 30.0
    # An inbound message waiting for or in its turn is leased by its process (renewed every third
    # of this while the turn waits or runs); others take it only when the lease ran out. And how
    # often each process sweeps for inbound messages whose owner is gone.
    turn_lease_seconds: float = Field(default=60.0, gt=0)
    turn_sweep_seconds: float = Field(default=10.0, gt=0)
    # What this process does with push channels' messages (set by `resonanz run --turn-workers M`
    # for its processes; docs/operations.md): "all" stores and answers them; "intake" only
    # stores them (the webhook's answer waits for nothing else) and hands them to the "turns"
    # processes over Redis, which answer them and serve no public port.
    process_role: Literal["all", "intake", "turns"] = "all"
    # A turn process lowers its CPU priority by this much (nice): on a busy machine the intake
    # processes' acknowledgements (milliseconds, with a provider's deadline) go first, the turns
    # (a hundred milliseconds and more in the engine anyway) take what is left. 0 keeps it.
    turn_nice: int = Field(default=5, ge=0, le=19)
    # PostgreSQL: connections (a pool of their own) holding or awaiting the per-conversation
    # advisory locks that order turns across gateway processes: one per conversation whose turn
    # runs or waits in this process; more such conversations wait for a free one.
    conversation_lock_connections: int = Field(default=20, ge=1, le=1000)
    # PostgreSQL: background sessions (turns, the outbox, agents' requests; not the storing of
    # what a webhook acknowledges) that run at once in this process; the others wait their turn.
    # Fewer at once keep acknowledgements fast on a busy host (resonanz/store/db.py). 0: no limit.
    db_background_sessions: int = Field(default=2, ge=0, le=1000)

    # The gateway's own configuration file (enabled connectors and their options).
    config_file: Path = PROJECT_ROOT / "resonanz.yml"

    # Several gateway processes: Redis pub/sub carries console events between them (handover/hub.py).
    # Empty: one process, in-process hub only. Set but unreachable at start-up: the gateway refuses to start.
    redis_url: str | None = None
    redis_channel: str = "resonanz:hub"

    # --- Agent authentication (docs/handover.md, "Agents and the console") ---
    # Reverse proxies whose X-Forwarded-For is believed, as IPs or CIDRs (JSON list). Only when the
    # TCP peer is one of them is the client address taken from that header (the rightmost hop that
    # is not a trusted proxy). Empty: the TCP peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # Login attempts per window, in `limits` notation ("5/15minutes"). Every attempt is counted
    # before the password is checked; a successful login clears that address's and that e-mail's
    # count. One address guessing one agent's password is stopped first; one address trying many
    # e-mails next; the per-e-mail limit is higher, so that one stranger cannot lock an agent out.
    login_limit_ip_email: str = "5/15minutes"
    login_limit_ip: str = "50/15minutes"
    login_limit_email: str = "30/15minutes"
    # argon2 runs in this many worker threads at most (each uses one core and 64 MiB for ~50 ms).
    password_hash_workers: int = Field(default=2, ge=1, le=64)
    # A console login lasts this long; an API (bearer) token this many days unless issued otherwise.
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    api_token_days: int = Field(default=90, ge=1, le=3650)

    # /metrics (resonanz/metrics.py): with a token, scrapes need `Authorization: Bearer <token>`;
    # without one, only loopback scrapes that came through no proxy are answered.
    metrics_token: str | None = None
    # A graceful stop waits this long for running turns before it closes sockets and cancels the
    # rest (their messages are handed back to the next process): resonanz/shutdown.py.
    shutdown_seconds: float = Field(default=20.0, gt=0)

    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"
    var_dir: Path = PROJECT_ROOT / "var"
    models_dir: Path = PROJECT_ROOT / "models"
    # What the bot is trained from: training_data/, domain.yml and config.yml (`resonanz train`);
    # the review queue's export writes training_data/nlu/reviewed.yml below it.
    training_root: Path = PROJECT_ROOT

    @field_validator("port", "engine_port")
    @classmethod
    def _port(cls, v: int) -> int:
        if not 0 <= v < 65536:
            raise ValueError("must be a TCP port (0-65535)")
        return v

    @field_validator("texts")
    @classmethod
    def _texts(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        from resonanz.texts import CATALOGUE, problems

        wrong = problems(v, CATALOGUE)
        if wrong:
            raise ValueError("; ".join(wrong))
        return v

    @field_validator("customer_number_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        from resonanz.customer_number import CustomerNumbers

        CustomerNumbers(v)  # raises ValueError with the reason
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as Europe/Berlin)") from exc
        return v

    @field_validator("engine_urls", mode="before")
    @classmethod
    def _url_list(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(u.strip() for u in v.split(",") if u.strip())
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for net in v:
            try:
                ipaddress.ip_network(net.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not an IP address or CIDR network") from None
        return tuple(net.strip() for net in v)

    @field_validator("login_limit_ip_email", "login_limit_ip", "login_limit_email", "continue_limit")
    @classmethod
    def _rate(cls, v: str) -> str:
        from limits import parse

        try:
            parse(v)
        except ValueError:
            raise ValueError(f"{v!r} is not a rate such as '5/15minutes'") from None
        return v

    @property
    def external_engine_urls(self) -> tuple[str, ...]:
        """The engines this gateway does not start itself (empty: it starts them)."""
        return self.engine_urls or ((self.engine_url,) if self.engine_url else ())

    @property
    def local_engine_ports(self) -> tuple[int, ...]:
        return tuple(self.engine_port + i for i in range(self.engines))

    @property
    def resolved_engine_urls(self) -> tuple[str, ...]:
        return self.external_engine_urls or tuple(f"http://127.0.0.1:{p}" for p in self.local_engine_ports)

    @property
    def resolved_engine_url(self) -> str:
        return self.resolved_engine_urls[0]
