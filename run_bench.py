"""nlbench entry point: `python run_bench.py [run SUITE | report DIR | list | ...]`."""

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main())
