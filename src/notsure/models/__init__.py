"""Convolutional networks: architectures, training, inference and safe storage."""

from notsure.models.cnn import CNNConfig, ConvNet, build_model
from notsure.models.predict import predict_logits
from notsure.models.store import StoredModel, load_model, save_model
from notsure.models.train import TrainResult, train_cnn

__all__ = [
    "CNNConfig",
    "ConvNet",
    "StoredModel",
    "TrainResult",
    "build_model",
    "load_model",
    "predict_logits",
    "save_model",
    "train_cnn",
]
