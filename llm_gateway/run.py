"""``python -m llm_gateway.run [--workers N] [daphne options] project.asgi:application``:
daphne on uvloop, with an accept backlog, optionally as N processes on one port. The command
is the interface; the launcher is ``llm_gateway.server.launcher``."""

from .server.launcher import main

if __name__ == "__main__":
    main()
