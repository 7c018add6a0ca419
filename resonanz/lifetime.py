"""A child process that must not outlive the process that started it."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Linux: have the kernel send this process SIGTERM when `parent` dies, even by kill -9, so an
    orphan never keeps a port (a gateway worker bound with SO_REUSEPORT would even go on taking
    a share of the next start's connections). Exits at once when `parent` is already gone.
    The engine's launcher does the same for itself (bot/rasa_plugin/launch.py, which runs in the
    engine's environment and imports nothing of ours)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit("resonanz worker: the process that started this worker is gone")
