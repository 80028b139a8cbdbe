import json

import numpy as np
import pytest
import torch

from notsure.errors import ConfigError, NotsureError
from notsure.models import CNNConfig, build_model
from notsure.models.cnn import fuse_for_inference


@pytest.mark.parametrize("preset", [CNNConfig.default, CNNConfig.quick])
def test_presets_survive_a_json_round_trip(preset):
    config = preset()
    back = CNNConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config


@pytest.mark.parametrize("change", [
    {"arch": "resnet999"}, {"stages": ()}, {"stages": ((32, 0),)}, {"dropout": 1.0},
    {"epochs": 0}, {"lr": 0.0}, {"precision": "fp16"}, {"schedule": "step"}, {"threads": 0},
])
def test_invalid_settings_raise_config_error_naming_them(change):
    with pytest.raises(ConfigError, match=next(iter(change))):
        CNNConfig.default().replace(**change)


def test_unknown_or_missing_setting_in_dict_is_refused():
    data = CNNConfig.quick().to_dict()
    with pytest.raises(NotsureError, match="colour"):
        CNNConfig.from_dict(data | {"colour": "blue"})
    del data["epochs"]
    with pytest.raises(NotsureError, match="epochs"):
        CNNConfig.from_dict(data)
    with pytest.raises(NotsureError, match="stages"):
        CNNConfig.default().replace(stages=[["wide"]])


@pytest.mark.parametrize("size", [28, 56, 20])
def test_any_image_size_and_class_count(size):
    model = build_model(CNNConfig.quick(), n_classes=26).eval()
    x = torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
    assert model(x).shape == (3, 26)
    assert model(x.unsqueeze(1)).shape == (3, 26)


def test_inputs_are_raw_pixels_standardised_inside():
    model = build_model(CNNConfig.quick(), 10).eval()
    model.scale.mean.fill_(0.25)
    model.scale.std.fill_(0.5)
    x = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    np.testing.assert_allclose(model.scale(x).numpy().ravel(), [-0.5, 1.5], rtol=1e-6)


def test_fused_network_computes_the_same_function():
    torch.manual_seed(0)
    model = build_model(CNNConfig.default(), 10)
    for m in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    model.eval()
    fused = fuse_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        np.testing.assert_allclose(fused(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-4)
