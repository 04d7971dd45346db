"""The official SSR command line (the flags of its `main_cifar.py`, l.14-41) as a one-run suite.

`python run_bench.py ssr --theta_r 0.8 --noise_mode sym --noise_ratio 0.9 --dataset cifar100
--dataset_path PATH` reruns the README's command through the same validation, sweep machinery and
result store as any suite, so a record made this way sits next to the paper suites' records.
Flags that only steer the official script's surroundings are accepted and change nothing here
(each says why in `_IGNORED`); flags for features nlbench lacks fail with one line, so a command
never silently runs something other than what it asks for.
"""

from __future__ import annotations

import argparse
from typing import Any

from nlbench.errors import ConfigError, did_you_mean
from nlbench.methods.api.method import MethodCommand

OFFICIAL_DATASET_PATH = "~/CIFAR/CIFAR10"
"""The official default; our loader expands `~` (the official code does not)."""

_IGNORED = {
    "model": "--model is ignored, as in the official code, which always builds PreResNet18",
    "gpuid": "--gpuid sets nothing here (the official sets CUDA_VISIBLE_DEVICES); choose the "
    "device with --device or CUDA_VISIBLE_DEVICES yourself",
}

_UNSUPPORTED = {
    "noisy_dataset": "open-set noise is not supported by nlbench: drop --noisy_dataset",
    "noisy_dataset_path": "open-set noise is not supported by nlbench: drop --noisy_dataset_path",
}

_FLAGS: dict[str, tuple[type, object]] = {
    "dataset_path": (str, OFFICIAL_DATASET_PATH),
    "dataset": (str, "cifar10"),
    "noise_mode": (str, "sym"),
    "noise_ratio": (float, 0.5),
    "open_ratio": (float, 0.0),
    "theta_s": (float, 1.0),
    "theta_r": (float, 0.9),
    "lambda_fc": (float, 1.0),
    "k": (int, 200),
    "model": (str, "PreResNet18"),
    "epochs": (int, 300),
    "batch_size": (int, 128),
    "lr": (float, 0.02),
    "momentum": (float, 0.9),
    "weight_decay": (float, 5e-4),
    "seed": (int, 3047),
    "gpuid": (str, "0"),
    "run_path": (str, None),
    "entity": (str, None),
    **{flag: (str, None) for flag in _UNSUPPORTED},
}
"""Every flag of main_cifar.py (main_cifar.py l.14-41) with its type and official default."""


def _parser() -> argparse.ArgumentParser:
    """The official flags; abbreviations are refused, so only exact names are accepted."""
    p = argparse.ArgumentParser(
        prog="run_bench.py ssr", add_help=False, allow_abbrev=False, exit_on_error=False
    )
    for flag, (kind, default) in _FLAGS.items():
        p.add_argument(f"--{flag}", type=kind, default=default)
    return p


def _suite_name(args: argparse.Namespace) -> str:
    """`--run_path`, or the official default name made folder-safe (no parentheses)."""
    if args.run_path is None:
        return (
            f"ssr_{args.dataset}_{args.noise_mode}{args.noise_ratio:g}"
            f"_r{args.theta_r:g}_s{args.theta_s:g}"
        )
    name = args.run_path.strip()
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ConfigError(
            f"ssr: --run_path '{args.run_path}' must be a plain folder name (it "
            "names the suite: results go to results/<name>/)"
        )
    return name


def parse_ssr_command(argv: list[str]) -> dict[str, Any]:
    """The suite dict (the YAML structure of a suite file) of one official SSR run.

    Unknown flags, malformed values and flags for unsupported features raise ConfigError.
    """
    try:
        args, unknown = _parser().parse_known_args(argv)
    except argparse.ArgumentError as err:
        raise ConfigError(f"ssr: {err}") from None
    if unknown:
        known = [f"--{flag}" for flag in _FLAGS]
        raise ConfigError(
            f"ssr: unknown argument '{unknown[0]}'{did_you_mean(unknown[0], known)}; "
            f"the official main_cifar.py flags are: {' '.join(known)}"
        )
    for flag, message in _UNSUPPORTED.items():
        if getattr(args, flag) is not None:
            raise ConfigError(f"ssr: {message}")
    if args.open_ratio != 0:
        raise ConfigError(
            f"ssr: --open_ratio {args.open_ratio:g}: open-set noise is not supported "
            "by nlbench (only --open_ratio 0)"
        )
    if args.dataset not in ("cifar10", "cifar100"):
        raise ConfigError(
            f"ssr: --dataset '{args.dataset}': the official CIFAR script takes cifar10 or cifar100"
        )
    if args.noise_mode not in ("sym", "asym"):
        raise ConfigError(f"ssr: --noise_mode '{args.noise_mode}': expected sym or asym")
    if args.dataset == "cifar100" and args.noise_mode == "asym":
        raise ConfigError(
            "ssr: --noise_mode asym with --dataset cifar100 does not exist in the "
            "official code (its CIFAR-10 class map raises KeyError); write a suite "
            "with noise model asym to use ELR's CIFAR-100 map instead"
        )
    notes = "; ".join(_IGNORED.values())
    return {
        "name": _suite_name(args),
        "description": f"official SSR command: main_cifar.py {' '.join(argv)}. {notes}.",
        "datasets": [{"name": args.dataset, "root": args.dataset_path}],
        "noise": [{"model": args.noise_mode, "ratios": [args.noise_ratio]}],
        "methods": [
            {
                "name": "ssr",
                "hparams": {
                    "epochs": args.epochs,
                    "network": "preact_resnet18",
                    "lr": args.lr,
                    "momentum": args.momentum,
                    "weight_decay": args.weight_decay,
                    "batch_size": args.batch_size,
                    "theta_r": args.theta_r,
                    "theta_s": args.theta_s,
                    "k": args.k,
                    "lambda_fc": args.lambda_fc,
                },
            }
        ],
        "seeds": [args.seed],
        "engine": {"amp": False},  # fp32, as main_cifar.py runs
        # The official script logs to W&B under --entity; here that switches on W&B tracking.
        **({"tracking": {"wandb": True, "wandb_entity": args.entity}} if args.entity else {}),
    }


SSR_COMMAND = MethodCommand(
    name="ssr",
    help="SSR's official main_cifar.py command line, as one run",
    description="Accepts the flags of SSR's main_cifar.py (e.g. --theta_r 0.8 --noise_mode sym "
    "--noise_ratio 0.9 --dataset cifar100 --dataset_path PATH) plus nlbench's "
    "--set/--device/--dry-run/--no-progress.",
    to_suite=parse_ssr_command,
    hints={"--set dataset.root=PATH": "--dataset_path PATH"},
)
