"""`python -m mlcore ...`: see mlcore.cli."""

import logging
import os
import sys

from mlcore.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    # A rank under torchrun: after the process group is destroyed, gloo's C++ threads can abort the
    # interpreter's teardown (SIGABRT, "terminate called without an active exception") once every
    # output is written, and torchrun would then report the run as failed. Exit without the teardown
    # (workers/ddp.py does the same for the worker's ranks).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
sys.exit(code)
