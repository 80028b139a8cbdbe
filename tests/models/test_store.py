import json
import pickle

import numpy as np
import pytest
import torch

from notsure.errors import ConfigError, DataError, NotsureError
from notsure.io.hashing import sha256_file
from notsure.models import CNNConfig, build_model, predict_logits
from notsure.models.store import load_model, model_paths, save_model


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    config = CNNConfig.quick()
    model = build_model(config, 5)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
    model.scale.mean.fill_(0.13)
    model.eval()
    save_model(tmp_path / "fold0", model, config, image_shape=(28, 28),
               meta={"class_names": list("abcde"), "fold": 0})
    return tmp_path / "fold0", model, config


def test_round_trip_gives_identical_logits(saved):
    prefix, model, config = saved
    weights, settings = model_paths(prefix)
    assert weights.name == "fold0.safetensors" and settings.name == "fold0.json"
    loaded = load_model(prefix)
    assert loaded.config == config
    assert loaded.n_classes == 5 and loaded.image_shape == (28, 28)
    assert loaded.meta == {"class_names": list("abcde"), "fold": 0}
    x = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(predict_logits(loaded.model, x, precision="fp32"),
                                  predict_logits(model, x, precision="fp32"))
    assert load_model(weights).config == config  # either file's path works


def test_pickled_weights_are_refused_without_unpickling(saved):
    prefix, model, _ = saved
    weights, settings = model_paths(prefix)

    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    torch.save({"state": model.state_dict(), "boom": Boom()}, weights)
    header = json.loads(settings.read_text())
    header["weights_sha256"] = sha256_file(weights)  # even with a matching checksum
    settings.write_text(json.dumps(header))
    with pytest.raises(DataError, match="not a safetensors file"):
        load_model(prefix)


def test_pickle_in_place_of_settings_is_refused(saved):
    prefix, model, config = saved
    model_paths(prefix)[1].write_bytes(pickle.dumps({"format": "notsure-cnn"}))
    with pytest.raises(DataError, match="not a notsure model"):
        load_model(prefix)


def test_altered_weights_are_detected(saved):
    prefix, *_ = saved
    weights = model_paths(prefix)[0]
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="SHA-256"):
        load_model(prefix)


@pytest.mark.parametrize("edit,error", [
    (lambda h: h["config"].update(stages=[[8], [16]]), DataError),      # shapes do not fit
    (lambda h: h.update(n_classes=7), DataError),                       # head shape differs
    (lambda h: h["config"].update(arch="transformer"), ConfigError),    # unknown arch
    (lambda h: h.update(format="something-else"), DataError),           # not ours
    (lambda h: h.update(version=99), DataError),
])
def test_mismatched_settings_fail_clearly(saved, edit, error):
    prefix, *_ = saved
    settings = model_paths(prefix)[1]
    header = json.loads(settings.read_text())
    edit(header)
    settings.write_text(json.dumps(header))
    with pytest.raises(error) as info:
        load_model(prefix)
    assert isinstance(info.value, NotsureError)
    assert str(settings) in str(info.value) or str(model_paths(prefix)[0]) in str(info.value)


def test_missing_files_fail_clearly(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_model(tmp_path / "nothing")
