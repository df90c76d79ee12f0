"""A worker process's entry point: ``python -m gateway.cluster.worker_main TWISTD-ARGS``.

The supervisor (gateway.cluster.workers) passes the listening sockets as systemd
does; systemd also names the process that may take them (``LISTEN_PID``), which only
the worker itself can know, so it is set here before Twisted reads it.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Run ``twistd`` with the rest of the command line, the sockets marked as ours."""
    os.environ["LISTEN_PID"] = str(os.getpid())
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
