"""Datasets: one ``Dataset`` type and ``load`` for every supported file format; images to
classify, from any file, folder or array, via ``read_images_for_prediction``."""

from notsure.data.dataset import Dataset
from notsure.data.images import read_images_for_prediction
from notsure.data.load import FORMATS, detect_format, load

__all__ = ["FORMATS", "Dataset", "detect_format", "load", "read_images_for_prediction"]
