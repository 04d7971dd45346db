"""The commands behind the command line (`nlbench.cli` parses; these do): run a suite and
report it, rebuild a report, write REPRODUCTIONS.md, list what is registered, check a suite's
streamed data, time a suite's methods. Heavy imports happen inside each command, so `list` and
a bad flag answer at once."""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from nlbench.errors import NlbenchError

SUITES = files("nlbench.benchmarks")
"""The shipped suites (benchmarks/ in a checkout, package data when installed)."""
EXIT_PROBLEMS = 3


def _report(
    results: Path,
    out: Path,
    suite_file: Path | None = None,
    headline: str | None = None,
    baseline: str | None = None,
) -> tuple[object, list[tuple[Path, str]]]:
    """Rebuild the report of `results`. A paper suite's published table, and the recipe its Δ
    holds for, come from the suite file as written (never from `--set` overrides: a shortened
    run must not be compared with the paper); for `report`, from the shipped suite of the
    records' name. `headline` is the selection rule to lead with (the suite's, as run); without
    it, the suite file's, else the records'. `baseline` likewise (default: ce)."""
    from nlbench.expansion import expand, expected_recipes
    from nlbench.report import build_report
    from nlbench.store import Store
    from nlbench.suite_loading import load_suite

    records, problems = Store(results).load()
    if not records and not problems:
        from nlbench.errors import ConfigError

        raise ConfigError(
            f"no run records in '{results}' (run a suite first: "
            "python run_bench.py run benchmarks/quick.yaml)"
        )
    if suite_file is None and records and (SUITES / f"{records[0].suite}.yaml").is_file():
        suite_file = Path(str(SUITES / f"{records[0].suite}.yaml"))
    suite = load_suite(suite_file) if suite_file is not None else None
    paper = suite.paper if suite is not None else []
    reference = suite.reference if suite is not None else []
    expected = expected_recipes(expand(suite)) if paper or reference else None
    if headline is None and suite is not None and suite.selection is not None:
        headline = suite.selection.headline
    if baseline is None:
        baseline = (suite.baseline if suite is not None else None) or "ce"
    problems_text = [(str(p), m) for p, m in problems]
    paths = build_report(records, out, problems=problems_text, paper=paper, expected=expected,
                         headline=headline, reference=reference, baseline=baseline)  # fmt: skip
    return paths, problems


def _print_paths(paths) -> None:
    print(f"leaderboard: {paths.markdown}")
    print(f"csv:         {paths.csv}")
    print(f"cells:       {paths.cells}")
    for plot in paths.plots:
        print(f"plot:        {plot}")
    if paths.seeds_needed:
        print(f"seeds-needed: {paths.seeds_needed}")


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.set or [])
    if args.executor:
        overrides.append(f"executor.kind={args.executor}")
    if args.no_progress:
        overrides.append("engine.progress=false")
    if args.tensorboard:
        overrides.append("tracking.tensorboard=true")
    if args.wandb:
        overrides.append("tracking.wandb=true")
    return overrides


def suite_path(name: str) -> Path:
    """A suite file by path, or a shipped suite by name (`quick`, `ssr_cifar10_paper`)."""
    path = Path(name).expanduser()
    shipped = SUITES / f"{name.removesuffix('.yaml')}.yaml"
    if not path.exists() and "/" not in name and shipped.is_file():
        return Path(str(shipped))
    return path


def cmd_run(args: argparse.Namespace) -> int:
    from nlbench.suite_loading import load_suite

    path = suite_path(args.suite)
    return _run_suite(load_suite(path, _overrides(args)), args, path)


def cmd_method_command(args: argparse.Namespace) -> int:
    """A method's own command line (e.g. SSR's official flags), run as a one-run suite."""
    from nlbench.suite_loading import suite_from_dict

    command = args.method_command
    try:
        raw = command.to_suite(args.official)
        where = f"{command.name} command line"
        return _run_suite(suite_from_dict(raw, where, _overrides(args)), args, where=where)
    except NlbenchError as exc:
        message = str(exc)
        for ours, theirs in command.hints.items():
            message = message.replace(ours, theirs)
        raise type(exc)(message) from None


def _run_suite(
    suite, args: argparse.Namespace, suite_file: Path | None = None, where: str = ""
) -> int:
    from nlbench.expansion import expand
    from nlbench.runner import run_sweep
    from nlbench.store import Store
    from nlbench.suite_origin import SuiteOrigin

    specs = expand(suite)
    results = Path(suite.results_dir) / suite.name
    if args.dry_run:
        store = Store(results)
        done = {r.run_id for r in store.load()[0]}
        for spec in specs:
            mark = "done" if spec.run_id in done else "todo"
            print(f"{spec.run_id}  {mark}  {spec.describe()}")
        print(f"{len(specs)} runs ({sum(s.run_id in done for s in specs)} done) -> {results}")
        return 0
    reports = Path(suite.reports_dir) / suite.name
    origin = (
        SuiteOrigin.of_file(suite_file)
        if suite_file is not None
        else SuiteOrigin.of_data(where, suite.model_dump(exclude={"results_dir", "reports_dir"}))
    )
    summary = run_sweep(
        suite,
        specs,
        Store(results),
        retry_failed=args.retry_failed,
        device_name=args.device,
        reports=reports,
        origin=origin,
        wait=args.wait,
    )
    kept = f", {len(summary.kept)} failed earlier and kept" if summary.kept else ""
    print(
        f"{suite.name}: {summary.total} runs, {summary.ran} trained, {summary.skipped} already "
        f"stored, {len(summary.failed)} failed{kept}"
    )
    for line in summary.failed:
        print(f"failed: {line}")
    for line in summary.kept:
        print(f"failed earlier, kept: {line}")
    if summary.ran + summary.skipped:
        headline = suite.selection.headline if suite.selection is not None else None
        paths, _ = _report(results, reports, suite_file, headline, suite.baseline)
        _print_paths(paths)
    for path, problem, moved in summary.problems:
        print(
            f"error: record {path} was unreadable ({problem}); kept as {moved.name}, run redone",
            file=sys.stderr,
        )
    unsuccessful = _unsuccessful(summary)
    if unsuccessful:
        print(unsuccessful, file=sys.stderr)
    return EXIT_PROBLEMS if summary.problems or unsuccessful else 0


def _unsuccessful(summary) -> str:
    """The sweep's last line when runs did not succeed: how many, and how each kind is retried
    (empty when every run succeeded)."""
    failed = len(summary.failed) - summary.crashed
    parts = []
    if failed:
        parts.append(f"{failed} failed in this sweep (see 'failed:' above; fix the cause and "
                     "rerun: a changed spec, data or engine option retries them)")  # fmt: skip
    if summary.crashed:
        parts.append(f"{summary.crashed} crashed without a record (see above; rerun the same "
                     "command to retry them)")  # fmt: skip
    if summary.kept:
        parts.append(f"{len(summary.kept)} failed in an earlier sweep and were kept, since "
                     "neither their spec, data nor engine options changed (rerun with "
                     "--retry-failed to redo them)")  # fmt: skip
    if not parts:
        return ""
    count = failed + summary.crashed + len(summary.kept)
    return f"error: {count} of {summary.total} runs did not succeed: {'; '.join(parts)}"


def cmd_report(args: argparse.Namespace) -> int:
    results = Path(args.results_dir)
    out = Path(args.out) if args.out else Path("reports") / results.name
    paths, problems = _report(results, out)
    _print_paths(paths)
    for path, problem in problems:
        print(
            f"error: record {path} is unreadable ({problem}); rerun its suite to redo it",
            file=sys.stderr,
        )
    return EXIT_PROBLEMS if problems else 0


def cmd_reproductions(args: argparse.Namespace) -> int:
    """REPRODUCTIONS.md from the records of each results folder and its shipped suite file."""
    from nlbench.errors import ConfigError
    from nlbench.reproductions import Reproduced, reproductions_markdown
    from nlbench.store import Store
    from nlbench.suite_loading import load_suite

    entries = []
    for folder in map(Path, args.results_dirs):
        records, problems = Store(folder).load()
        for path, problem in problems:
            print(f"error: record {path} is unreadable ({problem})", file=sys.stderr)
        name = records[0].suite if records else folder.name
        suite_file = Path(args.suite) if args.suite else Path(str(SUITES / f"{name}.yaml"))
        if not suite_file.is_file():
            raise ConfigError(f"no suite file for results '{folder}' (looked for {suite_file}); "
                              "give it with --suite")  # fmt: skip
        entries.append(Reproduced(load_suite(suite_file), records))
    out = Path(args.out)
    out.write_text(reproductions_markdown(entries), encoding="utf-8")
    print(f"reproductions: {out}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from nlbench.data.datasets import DATASETS
    from nlbench.data.noise import NOISE_MODELS
    from nlbench.methods.api import available
    from nlbench.methods.toolkit.networks import NETWORKS
    from nlbench.methods.toolkit.views import VIEWS
    from nlbench.registry import first_sentence

    print("methods:")
    for name, cls in available().items():
        print(f"  {name:16s} {first_sentence(cls.__doc__)}")
    print("datasets:")
    for name, info in DATASETS.items():
        print(f"  {name:16s} {info.doc}")
    print("noise models:")
    for name, info in NOISE_MODELS.items():
        print(f"  {name:16s} {info.doc}")
    print("networks:")
    for name, info in NETWORKS.items():
        print(f"  {name:16s} {info.doc}")
    print(f"views: {', '.join(VIEWS)}")
    print("suites shipped:")
    for entry in sorted(SUITES.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            print(f"  {entry.name.removesuffix('.yaml')}")
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    """Decode every streamed image of a suite; exit non-zero when any does not decode."""
    from nlbench.data_check import check_data, summary_lines
    from nlbench.errors import DataError
    from nlbench.suite_loading import load_suite

    if args.workers < 0:
        raise DataError(f"--workers {args.workers}: give 0 (decode here) or more")
    checks = check_data(load_suite(suite_path(args.suite), list(args.set or [])), args.workers)
    for line in summary_lines(checks):
        print(line)
    bad = sum(len(c.bad) for c in checks)
    if bad:
        total = sum(c.images for c in checks if c.streamed)
        raise DataError(
            f"{bad:,} of {total:,} listed images do not decode (listed above): replace them, or "
            "drop them from the dataset's list file"
        )
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    """Every argument is checked before the first timed epoch: a typo must not cost the timing."""
    from nlbench.errors import ConfigError
    from nlbench.perf import concurrency, output_stem, run_perf, stream_throughput
    from nlbench.suite_loading import load_suite

    if args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: time at least 1 epoch (2+ to skip warm-up)")
    counts = _counts("--concurrency", args.concurrency, minimum=1)
    workers = _counts("--stream-workers", args.stream_workers, minimum=0)
    if workers and (args.compare or args.concurrency):
        raise ConfigError("--stream-workers times decoding only: drop --compare / --concurrency")
    if args.images < 1 or args.batch_size < 1:
        raise ConfigError(f"--images {args.images} / --batch-size {args.batch_size}: both >= 1")
    overrides = list(args.set or []) + ["engine.progress=false"]
    suite = load_suite(suite_path(args.suite), overrides)
    out = Path(args.out)
    stem = output_stem(out, suite.name)
    if workers:
        streamed = stream_throughput(suite, workers, args.images, args.batch_size, args.device,
                                     out, stem)  # fmt: skip
        print(streamed.to_string(index=False))
        print(f"written: {out / f'stream_{stem}.md'}")
        return 0
    table = run_perf(suite, args.epochs, args.compare, args.device, out, stem)
    print(table.to_string(index=False))
    print(f"written: {out / f'{stem}.md'}")
    if counts:
        shared = concurrency(suite, counts, args.epochs, args.device, out, stem)
        print(shared.to_string(index=False))
    return 0


def _counts(flag: str, text: str | None, minimum: int) -> list[int]:
    """A comma-separated list of counts such as 1,2,4 (empty when the flag is absent)."""
    from nlbench.errors import ConfigError

    if not text:
        return []
    try:
        counts = [int(c) for c in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < minimum:
        raise ConfigError(f"{flag} '{text}': give counts >= {minimum} such as 1,2,4")
    return counts
