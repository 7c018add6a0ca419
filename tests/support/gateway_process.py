"""The gateway as a separate process (`resonanz run` with external engines), so that a test can
kill it with SIGKILL and start another one on the same database (resonanz/topology.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resonanz import topology
from resonanz.topology import GatewayProcess

__all__ = ["GatewayProcess", "gateway_env"]


def gateway_env(*, database_url: str, engine_url: str, port: int, var_dir: Path, connectors: tuple[str, ...],
                connector_options: Mapping[str, Any], **settings: object) -> dict[str, str]:
    """The environment of `resonanz run` against one engine that is already running."""
    return topology.gateway_env(database_url=database_url, engine_urls=[engine_url], port=port, var_dir=var_dir,
                                connectors=connectors, connector_options=connector_options, **settings)
