import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from age_assets.datasets.archives import UnsafeArchiveError, extract_archive
from age_assets_tests.conftest import write_appa_real, zip_folder


def test_zip_is_extracted_in_full(tmp_path: Path) -> None:
    archive = zip_folder(write_appa_real(tmp_path / "src"), tmp_path / "a.zip")
    target = extract_archive(archive, tmp_path / "out")
    assert (target / "appa-real-release" / "gt_avg_train.csv").is_file()
    assert len(list(target.rglob("*_face.jpg"))) == 24
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:/evil.txt"])
def test_zip_entry_escaping_the_target_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(name, "evil")
    with pytest.raises(UnsafeArchiveError, match="bad.zip"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("escape")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")


@pytest.mark.parametrize("kind", ["dotdot", "link"])
def test_tar_entry_escaping_the_target_is_refused(tmp_path: Path, kind: str) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        if kind == "dotdot":
            info = tarfile.TarInfo("../evil.txt")
            info.size = 4
            tf.addfile(info, io.BytesIO(b"evil"))
        else:
            info = tarfile.TarInfo("escape")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../etc/passwd"
            tf.addfile(info)
    with pytest.raises(UnsafeArchiveError, match="bad.tar"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_an_archive_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive at all")
    with pytest.raises(ValueError, match="junk.zip is neither a zip nor a tar"):
        extract_archive(junk, tmp_path / "out")
