"""``notsure data``: fetch MNIST, summarize a data file, export it as the customer CSV, and
generate the letters-and-digits dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from notsure.cli.commands import add_command, common_options
from notsure.cli.options import add_option, given
from notsure.data.images import IMAGE_INPUTS
from notsure.data.load import FORMATS
from notsure.data.mnist import PARTS
from notsure.errors import ConfigError, DataError
from notsure.io.atomic import to_jsonable
from notsure.io.hashing import sha256_file
from notsure.io.progress import say

_LETTERS = "notsure.data.letters:make_letters_file."


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data fetch``, ``data info`` and ``data export`` to the ``notsure`` parser."""
    common = common_options()
    data = subparsers.add_parser("data", parents=[common], help="get, inspect and export data",
                                 description="Get, inspect and export datasets.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    fetch = actions.add_parser(
        "fetch", parents=[common], help="download a dataset and verify its checksums",
        description="Download the four MNIST files from public mirrors into the data folder "
                    "($NOTSURE_DATA_DIR/mnist, else ~/.cache/notsure/mnist) and verify them.")
    fetch.add_argument("dataset", choices=["mnist"], help="dataset to download")
    fetch.add_argument("--dest", type=Path, metavar="DIR",
                       help="folder to put the files in (default: the data folder's mnist/)")
    fetch.set_defaults(func=run_fetch)

    info = actions.add_parser(
        "info", parents=[common], help="summarize a data file or folder",
        description="Print size, shape, value range, per-class counts, duplicates and the "
                    "fingerprint of a data file or folder.")
    _add_input_options(info, FORMATS + IMAGE_INPUTS)
    info.add_argument("--scale", type=float, metavar="MAX",
                      help="the value that means full ink in a .npy input, e.g. 1 for floats in "
                           "0..1 (as for `notsure predict`)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=run_info)

    export = actions.add_parser(
        "export", parents=[common], help="write a dataset in another layout",
        description="Write a dataset of images as the customer CSV: label,pixel0,...,pixelN, "
                    "pixel k at row k // width, column k % width.")
    _add_input_options(export)
    export.add_argument("--to", required=True, choices=["csv"], help="output layout")
    export.add_argument("--out", required=True, type=Path, metavar="FILE", help="output file")
    export.add_argument("--split", choices=PARTS,
                        help="only the samples of this MNIST part (ids starting with PART/)")
    export.set_defaults(func=run_export)

    _add_make_letters(actions)


def _add_input_options(parser: argparse.ArgumentParser,
                       formats: tuple[str, ...] = FORMATS) -> None:
    parser.add_argument("path", type=Path, metavar="PATH", help="data file or folder")
    parser.add_argument("--format", choices=formats, help="skip format detection")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="labels file of an IDX images file or headerless CSV")


def _load(args: argparse.Namespace):
    from notsure.data.load import load

    return load(args.path, args.format, labels_path=args.labels)


def run_fetch(args: argparse.Namespace) -> int:
    from notsure.data.fetch import fetch_mnist

    dest = fetch_mnist(args.dest, quiet=args.quiet)
    say(f"MNIST is ready in {dest}", quiet=args.quiet)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from notsure.data.images import format_image_input_info, image_input_info, input_kind
    from notsure.data.info import dataset_info, format_info

    if (args.format or input_kind(args.path)) in IMAGE_INPUTS:  # images without a dataset format
        info = image_input_info(args.path, format=args.format, scale=args.scale)
        text = format_image_input_info(info)
    else:
        if args.scale is not None:
            raise ConfigError("--scale applies to .npy arrays only")
        info = dataset_info(_load(args))
        if args.path.is_file():  # a folder has no one file hash; the content fingerprint covers it
            info["file_sha256"] = sha256_file(args.path)
        text = format_info(info)
    print(json.dumps(to_jsonable(info), indent=2) if args.json else text)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from notsure.data.csv_export import csv_labels, export_csv

    ds = _load(args)
    if args.split:
        keep = np.char.startswith(ds.ids.astype(str), f"{args.split}/")
        if not keep.any():
            raise DataError(f"{args.path}: no sample ids start with {args.split + '/'!r} "
                            f"(first id: {ds.ids[0]!r}); --split needs MNIST-style ids")
        ds = ds.subset(keep)
    labels = csv_labels(ds.class_names)
    export_csv(ds, args.out)
    if labels != ds.class_names:
        mapping = ", ".join(f"{i}={name}" for i, name in enumerate(ds.class_names))
        say(f"class names are not integers; labels written as indices: {mapping}",
            quiet=args.quiet)
    say(f"wrote {len(ds)} rows to {args.out}", quiet=args.quiet)
    return 0


def _add_make_letters(actions: argparse._SubParsersAction) -> None:
    """``notsure data make-letters``: the generated 36-class letters-and-digits dataset."""
    p = add_command(
        actions, "make-letters",
        help="generate a 36-class binary 56x56 letters-and-digits dataset",
        description="Render 0-9 and A-Z (upper or lower case) in the fonts shipped with "
                    "matplotlib, distort them at random, binarize to 56x56 {0,1}, with the letters "
                    "customer's skewed class sizes (one single-image class, the others 102 to "
                    "3,291 images), and save the (X, y) pickle `notsure compare` reads.")
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="pickle to write")
    add_option(p, "--scale", type=float, default_from=_LETTERS + "scale",
               help="shrink every class but the single-image one (0 < scale <= 1)")
    add_option(p, "--seed", type=int, default_from=_LETTERS + "seed",
               help="seed of the sizes and the images")
    p.set_defaults(func=run_make_letters)


def run_make_letters(args: argparse.Namespace) -> int:
    from notsure.data.letters import make_letters_file
    from notsure.io.progress import say

    if args.seed is not None and args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    path = make_letters_file(args.out, **given(scale=args.scale, seed=args.seed))
    say(f"wrote {path}", quiet=args.quiet)
    print(path)
    return 0
