import numpy as np
import pytest

from notsure.errors import DataError
from notsure.models import predict_logits, train_cnn


def test_learns_synthetic_patterns_28(strokes28, tiny_config):
    x, y = strokes28
    res = train_cnn(x[:300], y[:300], 3, tiny_config, seed=0, x_val=x[300:], y_val=y[300:],
                    quiet=True)
    acc = (predict_logits(res.model, x[300:]).argmax(1) == y[300:]).mean()
    assert acc >= 0.9  # chance is 1/3
    assert len(res.history) == tiny_config.epochs
    assert res.history[-1]["val_acc"] == pytest.approx(acc, abs=0.02)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.image_shape == (28, 28)


def test_learns_synthetic_patterns_56_fp32(strokes56, tiny_config):
    x, y = strokes56
    res = train_cnn(x[:300], y[:300], 3, tiny_config.replace(precision="fp32"), seed=0,
                    quiet=True)
    acc = (predict_logits(res.model, x[300:], precision="fp32").argmax(1) == y[300:]).mean()
    assert acc >= 0.9


def test_same_seed_same_model_other_seed_other_model(strokes28, tiny_config):
    x, y = strokes28
    config = tiny_config.replace(epochs=2)
    runs = [train_cnn(x[:300], y[:300], 3, config, seed=s, quiet=True) for s in (3, 3, 4)]
    logits = [predict_logits(r.model, x[300:], precision="fp32") for r in runs]
    np.testing.assert_array_equal(logits[0], logits[1])
    assert not np.array_equal(logits[0], logits[2])


def test_max_train_subsamples(strokes28, tiny_config):
    x, y = strokes28
    res = train_cnn(x, y, 3, tiny_config.replace(epochs=1, max_train=64, batch_size=16),
                    seed=0, quiet=True)
    assert res.history[0]["images_per_s"] > 0
    assert res.history[0]["seconds"] > 0


@pytest.mark.parametrize("bad", [
    dict(y=np.zeros(5, dtype=np.int64)),                      # wrong length
    dict(y=np.full(10, 3, dtype=np.int64)),                   # label out of range
    dict(x=np.zeros((10, 28), dtype=np.uint8)),               # not images
    dict(x_val=np.zeros((4, 28, 28), dtype=np.uint8)),        # x_val without y_val
])
def test_bad_input_raises_data_error(bad, tiny_config):
    args = dict(x=np.zeros((10, 28, 28), dtype=np.uint8), y=np.zeros(10, dtype=np.int64))
    args |= bad
    with pytest.raises(DataError):
        train_cnn(args.pop("x"), args.pop("y"), 3, tiny_config, seed=0, quiet=True, **args)
