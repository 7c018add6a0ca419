"""Start `rasa` inside the engine's environment without secrets on its command line.

`rasa run --auth-token X` would show the token to every local user in /proc/<pid>/cmdline (and a
token starting with "-" is an argparse error). The gateway passes the token in the child's
environment (RESONANZ_ENGINE_TOKEN, readable only by our own user); this module appends it to
rasa's own argument list in memory, which /proc does not show. It also makes every file the
engine creates (tracker store, logs) private to our user.

    python -m bot.rasa_plugin.launch run --enable-api --port 5005 ...
"""

import os
import sys


def main() -> None:
    os.umask(0o077)
    token = os.environ.get("RESONANZ_ENGINE_TOKEN")
    args = sys.argv[1:]
    if token:
        args.append(f"--auth-token={token}")
    sys.argv = ["rasa", *args]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
