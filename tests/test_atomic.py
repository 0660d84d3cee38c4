"""The one atomic write: whole file or old file, never half; nothing left behind on error."""
import doctest
import os

import pytest

from assistant import atomic


def test_doctest():
    assert doctest.testmod(atomic).failed == 0


def test_an_error_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "manifest.json"
    atomic.write_json(p, {"v": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic.atomic_path(p) as tmp:
            tmp.write_text('{"v": 2, "half')
            raise RuntimeError("disk full")
    assert p.read_text() == '{\n  "v": 1\n}\n' and [q.name for q in tmp_path.iterdir()] == ["manifest.json"]


def test_two_writers_never_share_a_temp_name_and_files_get_the_usual_mode(tmp_path):
    p = tmp_path / "out.bin"
    with atomic.atomic_path(p) as a, atomic.atomic_path(p) as b:
        assert a != b and a.parent == b.parent == tmp_path
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    assert p.read_bytes() == b"a"           # the outer block ends last and wins
    umask = os.umask(0o022)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask
    atomic.write_bytes(tmp_path / "new" / "deep.bin", b"x")   # folders are made
    assert (tmp_path / "new" / "deep.bin").read_bytes() == b"x"


def test_a_folder_is_replaced_whole_or_kept(tmp_path):
    run = tmp_path / "epoch-1"
    with atomic.atomic_dir(run) as tmp:
        (tmp / "adapter.bin").write_bytes(b"old")
    with pytest.raises(OSError):
        with atomic.atomic_dir(run) as tmp:
            (tmp / "adapter.bin").write_bytes(b"ha")
            raise OSError("killed mid-save")
    assert (run / "adapter.bin").read_bytes() == b"old" and [q.name for q in tmp_path.iterdir()] == ["epoch-1"]
    with atomic.atomic_dir(run) as tmp:
        (tmp / "adapter.bin").write_bytes(b"new")
    assert (run / "adapter.bin").read_bytes() == b"new" and [q.name for q in tmp_path.iterdir()] == ["epoch-1"]
