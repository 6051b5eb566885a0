import os
import stat

import pytest

from rtvp.errors import ConfigError, DataError
from rtvp.fileio import atomic_write_bytes, atomic_write_text, read_json, read_text, read_yaml


def test_read_json_names_file_and_line(tmp_path):
    p = tmp_path / "preds.json"
    p.write_text('[\n  {"a": 1},\n  {"a": }\n]')
    with pytest.raises(DataError, match=r"preds.json: predictions file is not valid JSON \(line 3, column 9") as e:
        read_json(p, "predictions file", fix="write it with `rtvp predict`")
    assert str(e.value).endswith("; write it with `rtvp predict`")


def test_missing_folder_and_binary_files_are_messages(tmp_path):
    with pytest.raises(DataError, match=r"nope.json: queue not found$"):
        read_json(tmp_path / "nope.json", "queue")
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        read_text(tmp_path, "recipe", error=ConfigError)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    with pytest.raises(DataError, match=r"b.json: JSON file is not UTF-8 text \(binary byte at offset 0\)"):
        read_json(binary)


def test_read_yaml_reports_line(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("name: ok\nsources: [unclosed\n")
    with pytest.raises(ConfigError, match=r"r.yaml: recipe is not valid YAML \(line 3"):
        read_yaml(p, "recipe", error=ConfigError)
    (tmp_path / "e.yaml").write_text("")
    assert read_yaml(tmp_path / "e.yaml") is None


def test_atomic_write_keeps_old_file_on_failure_and_uses_umask(tmp_path, monkeypatch):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "old")
    mode = stat.S_IMODE(p.stat().st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(p, b"new")
    assert p.read_text() == "old"
    assert [q.name for q in p.parent.iterdir()] == ["f.txt"]  # no temp file left behind
