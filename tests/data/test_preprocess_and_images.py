"""MNIST-style preprocessing, and the one input path of ``predict``/``evaluate``/``data info``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.neighbors import KNeighborsClassifier

from notsure.cli.main import main
from notsure.data import load
from notsure.data.images import read_images_for_prediction, to_training_form
from notsure.data.preprocess import (
    light_background,
    light_backgrounds,
    to_mnist_batch,
    to_mnist_form,
)
from notsure.errors import DataError


@pytest.fixture(scope="module")
def digits(mnist_dir) -> np.ndarray:
    return load(mnist_dir).x[-300:]


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(float) - b.astype(float))))


def one_pixel_shift(x: np.ndarray) -> float:
    """How different MNIST digits are from themselves moved by one pixel: the yardstick."""
    return mean_abs(x, np.roll(x, 1, axis=2))


def render(image: np.ndarray, size: int, *, rgb: bool = False, white: bool = False,
           offset: tuple[int, int] = (0, 0), canvas: int | None = None) -> np.ndarray:
    """A 28x28 digit drawn as a person might give it: larger, colour, on white, off-centre."""
    big = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
    if canvas is not None:
        page = np.zeros((canvas, canvas), np.uint8)
        page[offset[0]:offset[0] + size, offset[1]:offset[1] + size] = big
        big = page
    if white:
        big = 255 - big
    return np.repeat(big[..., None], 3, axis=2) if rgb else big


def test_mnist_digits_are_left_almost_unchanged(digits):
    again = to_mnist_batch(digits)
    assert again.shape == digits.shape and again.dtype == np.uint8
    assert mean_abs(again, digits) < 0.05 * one_pixel_shift(digits)


@pytest.mark.parametrize("how", [
    {"size": 84}, {"size": 56, "rgb": True}, {"size": 28, "white": True},
    {"size": 112, "rgb": True, "white": True}, {"size": 40, "canvas": 100, "offset": (55, 3)},
])
def test_digits_rendered_otherwise_come_back_close_to_the_original(digits, how):
    back = to_mnist_batch([render(d, **how) for d in digits])
    # Closer to the original than the original is to itself shifted by one pixel.
    assert mean_abs(back, digits) < 0.6 * one_pixel_shift(digits)


def test_rendered_digits_get_the_same_answer_as_the_originals(mnist_dir, digits):
    """An independent classifier (3-NN on 5,000 MNIST training digits) answers 64x64 RGB digits on
    white, once preprocessed, as it answers the 28x28 originals: more often than it does for the
    originals moved by one pixel."""
    train = load(mnist_dir).subset(np.arange(5000))
    knn = KNeighborsClassifier(3).fit(train.x.reshape(5000, -1), train.y)

    def answers(x: np.ndarray) -> np.ndarray:
        return knn.predict(x.reshape(len(x), -1))

    original = answers(digits)
    back = to_mnist_batch([render(d, 64, rgb=True, white=True) for d in digits])
    agree = np.mean(answers(back) == original)
    assert agree >= 0.9
    assert agree > np.mean(answers(np.roll(digits, 1, axis=2)) == original)


def test_rgba_is_composited_on_white_and_blank_stays_blank(digits):
    d = digits[0]
    rgba = np.zeros((28, 28, 4), np.uint8)  # black strokes, transparent elsewhere
    rgba[..., 3] = d
    np.testing.assert_array_equal(to_mnist_form(rgba), to_mnist_form(255 - d))
    for blank in (np.zeros((28, 28)), np.full((50, 30), 255, np.uint8), np.zeros((9, 9, 3))):
        assert not to_mnist_form(blank).any()
    assert to_mnist_batch([]).shape == (0, 28, 28)
    with pytest.raises(DataError, match="expected a grayscale"):
        to_mnist_form(np.zeros((5, 5, 2)))


def test_every_input_kind_reads_to_the_same_training_form(digits, tmp_path):
    d = digits[:3]
    (tmp_path / "folder" / "deeper").mkdir(parents=True)
    for i, image in enumerate(d):
        Image.fromarray(render(image, 64, rgb=True, white=True)).save(
            tmp_path / "folder" / ("deeper" if i else ".") / f"{i}.png")
    Image.fromarray(d[0]).save(tmp_path / "one.png")
    np.save(tmp_path / "u8.npy", d)
    np.save(tmp_path / "f01.npy", d.astype(np.float32) / 255)
    single = read_images_for_prediction(tmp_path / "one.png")
    assert single.ids.tolist() == ["one.png"] and single.n_preprocessed == 0
    np.testing.assert_array_equal(single.x[0], d[0])  # already in training form: untouched
    folder = read_images_for_prediction(tmp_path / "folder")
    assert folder.ids.tolist() == ["0.png", "deeper/1.png", "deeper/2.png"]
    assert folder.y is None and folder.n_preprocessed == 3
    assert mean_abs(folder.x, d) < 0.6 * one_pixel_shift(digits)
    np.testing.assert_array_equal(read_images_for_prediction(tmp_path / "u8.npy").x, d)
    scaled = read_images_for_prediction(tmp_path / "f01.npy", scale=1)
    np.testing.assert_array_equal(scaled.x, d)


def test_a_folder_of_class_folders_is_labelled(digits, tmp_path):
    for name, image in (("3", digits[0]), ("7", digits[1]), ("7", digits[2])):
        (tmp_path / name).mkdir(exist_ok=True)
        Image.fromarray(image).save(tmp_path / name / f"{len(list(tmp_path.rglob('*.png')))}.png")
    images = read_images_for_prediction(tmp_path)
    assert images.class_names == ("3", "7") and images.y.tolist() == [0, 1, 1]


def test_float_pixels_in_0_1_are_refused_with_the_flag_to_use(tmp_path, capsys):
    x = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "x.npy: pixel values lie in 0..1" in err and "--scale 1" in err
    assert "scale=" not in err and "load(" not in err
    with pytest.raises(DataError, match=r"x\.npy: pixel values lie in 0\.\.1.*--scale 1"):
        read_images_for_prediction(path)  # what predict and evaluate read with
    assert main(["data", "info", str(path), "--scale", "1"]) == 0
    assert "4 images of 28x28" in capsys.readouterr().out
    np.save(path, x * 300)
    assert main(["data", "info", str(path)]) == 2
    assert "x.npy: pixel value" in capsys.readouterr().err


def test_no_preprocess_refuses_another_size_naming_file_and_flag(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(path)
    assert read_images_for_prediction(path).x.shape == (1, 28, 28)
    with pytest.raises(DataError, match=r"big\.png: image big\.png is 40x40.*--no-preprocess"):
        read_images_for_prediction(path, preprocess=False)


def test_unknown_files_get_a_hint_without_python_calls(tmp_path, capsys):
    path = tmp_path / "blob.bin"
    path.write_bytes(b"hello")
    assert main(["data", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--format" in err and "load(" not in err


def test_the_batch_background_check_agrees_with_the_per_image_one():
    """The vectorised check on a stack gives the per-image answer, and a stack mixing dark and
    light backgrounds is brought to the same form as image by image."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    x[:100, :2] = 0  # dark borders
    x[:100, -2:] = 0
    x[:100, :, :2] = 0
    x[:100, :, -2:] = 0
    x[100:150] = 255 - x[:50]  # light borders
    assert light_backgrounds(x).tolist() == [light_background(im) for im in x]
    batch, done = to_training_form(x, (28, 28), True, "x")
    single = np.stack([to_training_form([im], (28, 28), True, "x")[0][0] for im in x])
    np.testing.assert_array_equal(batch, single)
    assert done == sum(light_background(im) for im in x)
