import logging

import cv2
import numpy as np

from rtvp import imaging
from rtvp.imaging import read_image, to_channels


def _rgbp(tmp_path):
    """A 4-channel PNG: R, G, B and a polarization plane (written as BGRA, as OpenCV stores it)."""
    rgbp = np.zeros((8, 10, 4), np.uint8)
    rgbp[..., 0], rgbp[..., 1], rgbp[..., 2], rgbp[..., 3] = 10, 20, 30, np.arange(10, dtype=np.uint8) * 20
    path = tmp_path / "gcd.png"
    cv2.imwrite(str(path), rgbp[..., [2, 1, 0, 3]])
    return path, rgbp


def test_four_channel_images_keep_every_channel(tmp_path, monkeypatch):
    path, rgbp = _rgbp(tmp_path)
    assert np.array_equal(read_image(path, channels=None), rgbp)  # RGB order, 4th plane intact
    assert np.array_equal(read_image(path, channels=4), rgbp)


def test_dropping_the_extra_channel_is_said_once_naming_the_file(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(imaging, "_WARNED", set())
    path, rgbp = _rgbp(tmp_path)
    with caplog.at_level(logging.WARNING, logger="rtvp.data"):
        rgb = read_image(path, channels=3)
        read_image(path, channels=3)
    assert np.array_equal(rgb, rgbp[..., :3])
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [f"{path} has 4 channels; the model takes 3, so channels 4..4 are dropped (train with "
                        "--set model.in_channels=4 to use them all)"]
    assert to_channels(rgbp, 1).shape == (8, 10, 1)
