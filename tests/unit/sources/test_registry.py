from __future__ import annotations

import pytest
from source_layouts import assert_valid_record, minimal

from rtvp.errors import ConfigError
from rtvp.sources import SOURCES

FORMATS = ["coco", "crackforest", "deeppcb", "labelme", "mask_folders", "voc", "yolo"]


def test_all_seven_formats_registered():
    assert SOURCES.names() == FORMATS


def test_unknown_format_lists_valid_names():
    with pytest.raises(KeyError) as e:
        SOURCES.get("pascal")
    for name in FORMATS:
        assert name in str(e.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_option_is_config_error_listing_valid_options(fmt, tmp_path):
    options, _ = minimal(fmt, tmp_path)
    with pytest.raises(ConfigError) as e:
        list(SOURCES.get(fmt)(tmp_path, **options, bogus_option=1))
    msg = str(e.value)
    assert "bogus_option" in msg and "on_error" in msg and fmt in msg


@pytest.mark.parametrize("fmt", FORMATS)
def test_minimal_layout_gives_one_valid_record(fmt, tmp_path):
    options, label = minimal(fmt, tmp_path)
    recs = list(SOURCES.get(fmt)(tmp_path, **options))
    assert len(recs) == 1
    rec = recs[0]
    assert_valid_record(rec)
    assert rec.source == fmt and rec.path.is_file() and rec.width > 0 and len(rec.annotations) == 1
    assert "issues" not in rec.meta
    assert rec.label_file == label


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_option_value_is_config_error(fmt, tmp_path):
    options, _ = minimal(fmt, tmp_path)
    with pytest.raises(ConfigError, match="on_error"):
        list(SOURCES.get(fmt)(tmp_path, **options, on_error="ignore-everything"))
