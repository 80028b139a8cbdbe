"""``notsure export``: a run's ensemble as ONNX, with its thresholds and decision rule."""

from __future__ import annotations

import argparse

from notsure.cli.commands import add_command, add_run_argument
from notsure.cli.options import lazy_choices


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "export",
        help="write a selective run's ensemble as ONNX plus its decision rule (JSON)",
        description="Writes ensemble.onnx (pixels (N, H, W) float32 in, every member's logits "
                    "(K, N, C) out) and decision.json (class names, thresholds, the rule) after "
                    "checking that ONNX Runtime reproduces torch's logits.")
    add_run_argument(p)
    lazy_choices(p.add_argument("--format", default="onnx", help="export format (onnx)"),
                 "notsure.deploy.export:FORMATS")
    p.add_argument("--out", help="folder to write (default RUN_DIR/export)")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from notsure.deploy.export import run_export

    print(run_export(args.run_dir, args.format, args.out))
    return 0
