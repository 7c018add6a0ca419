"""Start `rasa` inside the engine's environment without secrets on its command line.

`rasa run --auth-token X` would show the token to every local user in /proc/<pid>/cmdline (and a
token starting with "-" is an argparse error). The gateway passes the token in the child's
environment (RESONANZ_ENGINE_TOKEN, readable only by our own user); this module appends it to
rasa's own argument list in memory, which /proc does not show. It also makes every file the
engine creates (tracker store, logs) private to our user, and applies the cuts of CPU per turn
the gateway asks for (bot/rasa_plugin/tuning.py).

    python -m bot.rasa_plugin.launch run --enable-api --port 5005 ...
"""

import os
import signal
import sys


def _die_with_parent() -> None:
    """Linux: have the kernel stop this engine when the gateway that started it dies, even by
    kill -9; otherwise the orphan keeps the port and the next start never becomes ready. Other
    systems rely on the pid file the gateway checks at start-up (bot/engine_process.py)."""
    parent = os.environ.get("RESONANZ_ENGINE_PARENT")
    if not sys.platform.startswith("linux") or not parent:
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        sys.exit("resonanz engine: the gateway that started this engine is gone")


def main() -> None:
    os.umask(0o077)
    _die_with_parent()
    token = os.environ.get("RESONANZ_ENGINE_TOKEN")
    args = sys.argv[1:]
    if token:
        args.append(f"--auth-token={token}")
    sys.argv = ["rasa", *args]
    from bot.rasa_plugin import tuning

    tuning.apply(tuning.requested())
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
