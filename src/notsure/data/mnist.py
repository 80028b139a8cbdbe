"""MNIST facts: the four IDX file names, their published SHA-256 and the per-class label counts.

Shared by the loader (which names the files) and the fetcher (which verifies downloads).
"""

from __future__ import annotations

#: The two parts of MNIST, in the order they are pooled: ``"train/<i>"`` then ``"t10k/<i>"``.
PARTS: tuple[str, ...] = ("train", "t10k")

#: Uncompressed IDX file name of each part's images and labels.
FILES: dict[str, dict[str, str]] = {
    "train": {"images": "train-images-idx3-ubyte", "labels": "train-labels-idx1-ubyte"},
    "t10k": {"images": "t10k-images-idx3-ubyte", "labels": "t10k-labels-idx1-ubyte"},
}

#: Every file name, uncompressed; the gzipped copies add ``GZ_SUFFIX``.
RAW_NAMES: tuple[str, ...] = tuple(FILES[p][k] for p in PARTS for k in ("images", "labels"))
GZ_SUFFIX = ".gz"
GZ_NAMES: tuple[str, ...] = tuple(name + GZ_SUFFIX for name in RAW_NAMES)

#: SHA-256 of the uncompressed files (the published content; independent of gzip settings).
SHA256_RAW: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: SHA-256 of the gzipped files as distributed (the LeCun / mirror ``.gz`` files).
SHA256_GZ: dict[str, str] = {
    "train-images-idx3-ubyte.gz":
        "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    "train-labels-idx1-ubyte.gz":
        "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    "t10k-images-idx3-ubyte.gz":
        "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    "t10k-labels-idx1-ubyte.gz":
        "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
}

#: Images per digit 0..9 in each part.
LABEL_COUNTS: dict[str, tuple[int, ...]] = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "t10k": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}

#: Number of samples in each part, and the image size.
N_SAMPLES: dict[str, int] = {part: sum(counts) for part, counts in LABEL_COUNTS.items()}
IMAGE_SHAPE: tuple[int, int] = (28, 28)

#: Class names of MNIST: the digits as strings.
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
