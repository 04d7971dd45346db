"""The command line: run a suite, rebuild a report, list what is available.

Every user error (bad suite, unknown method, missing data, unreadable record) ends as one line on
stderr and a non-zero exit; tracebacks are kept for bugs.
"""

from __future__ import annotations

import argparse
import os
import sys

from nlbench.cli_commands import (
    cmd_check_data,
    cmd_list,
    cmd_method_command,
    cmd_perf,
    cmd_report,
    cmd_reproductions,
    cmd_run,
)  # fmt: skip
from nlbench.errors import NlbenchError

EXIT_USER_ERROR = 2


def cmd_default(args: argparse.Namespace) -> int:
    args.suite, args.set, args.dry_run, args.device = "quick", [], False, None
    args.executor, args.retry_failed, args.no_progress, args.wait = None, False, False, False
    args.tensorboard = args.wandb = False
    return cmd_run(args)


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override any suite key, e.g. --set dataset.root=~/data --set seeds=[0]",
    )
    p.add_argument("--dry-run", action="store_true", help="validate and list runs; train nothing")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--executor", choices=["serial", "local", "slurm"])
    p.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
    p.add_argument(
        "--wait",
        action="store_true",
        help="when another sweep is training into the same results folder, wait for it to end",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--tensorboard", action="store_true", help="also log epochs to TensorBoard")
    p.add_argument("--wandb", action="store_true", help="also log epochs to W&B (offline default)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nlbench",
        description=(
            "Benchmark learning-with-noisy-labels methods. With no command: run "
            "benchmarks/quick.yaml, then write its report."
        ),
    )
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run a suite (skips runs already stored), then report")
    run.add_argument(
        "suite", help="suite YAML, or a shipped suite's name, e.g. benchmarks/quick.yaml or quick"
    )
    _run_flags(run)
    run.set_defaults(func=cmd_run)
    for command in method_commands().values():
        own = sub.add_parser(command.name, help=command.help, description=command.description)
        _run_flags(own)
        own.set_defaults(func=cmd_method_command, method_command=command)
    rep = sub.add_parser("report", help="rebuild leaderboards and plots from stored records")
    rep.add_argument("results_dir", help="e.g. results/quick")
    rep.add_argument("--out", help="output folder (default reports/<suite>)")
    rep.set_defaults(func=cmd_report)
    rep = sub.add_parser(
        "reproductions",
        help="REPRODUCTIONS.md: ours beside the official code's runs and the papers",
    )
    rep.add_argument("results_dirs", nargs="+", help="e.g. results/jocor_mnist_paper")
    rep.add_argument("--suite", help="the suite file (default: the shipped suite of that name)")
    rep.add_argument("--out", default="REPRODUCTIONS.md", help="the page to write")
    rep.set_defaults(func=cmd_reproductions)
    perf = sub.add_parser("perf", help="time real epochs of each method of a suite")
    perf.add_argument("suite")
    perf.add_argument(
        "--epochs", type=int, default=2, help="epochs per method (the first is warm-up when 2+)"
    )
    perf.add_argument("--compare", action="store_true", help="also time the plain fp32 path")
    perf.add_argument("--set", action="append", metavar="KEY=VALUE")
    perf.add_argument("--device", choices=["auto", "cpu", "cuda"])
    perf.add_argument("--out", default="reports/perf", help="where the table goes")
    perf.add_argument(
        "--concurrency",
        metavar="N,N,...",
        help="also time N copies of the first run sharing the device, e.g. 1,2,4",
    )
    perf.add_argument(
        "--stream-workers",
        metavar="N,N,...",
        help="instead, time decoding (+ augmenting) the first dataset's streamed images with N "
        "decoding workers each, e.g. 1,2",
    )
    perf.add_argument("--images", type=int, default=5000, help="images per --stream-workers pass")
    perf.add_argument("--batch-size", type=int, default=128, help="batch of --stream-workers")
    perf.set_defaults(func=cmd_perf)
    check = sub.add_parser(
        "check-data", help="decode every image a suite's streamed datasets list (once, slow)"
    )
    check.add_argument("suite")
    check.add_argument("--set", action="append", metavar="KEY=VALUE")
    check.add_argument("--workers", type=int, default=2, help="decoding worker processes")
    check.set_defaults(func=cmd_check_data)
    lst = sub.add_parser("list", help="methods, datasets, noise models and networks")
    lst.set_defaults(func=cmd_list)
    return p


def method_commands() -> dict:
    """The command lines methods register, by name (a broken plugin costs a warning, not these)."""
    from nlbench.methods.api import commands

    return commands()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        p = parser()
        if argv[:1] and argv[0] in method_commands():
            args, official = p.parse_known_args(argv)
            args.official = official
        else:
            args = p.parse_args(argv)
        func = getattr(args, "func", cmd_default)
        return func(args)
    except NlbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(
            "interrupted: finished runs are stored; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:
        # The reader left (`--dry-run | head`): what it wanted was printed. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
