"""nlbench entry point: `python run_bench.py [run SUITE | report DIR | list | ...]`."""

import sys

from nlbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
