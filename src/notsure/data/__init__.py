"""Datasets: one ``Dataset`` type and ``load`` for every supported file format."""

from notsure.data.dataset import Dataset
from notsure.data.load import FORMATS, detect_format, load

__all__ = ["FORMATS", "Dataset", "detect_format", "load"]
