"""`python -m mlcore ...`: see mlcore.cli."""

import os
import sys

from mlcore.cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # a rank under torchrun (torch is imported by now)
    from mlcore.distributed import exit_rank

    exit_rank(code or 0)
sys.exit(code)
