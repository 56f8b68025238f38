"""Dataset layouts: 300-W / Menpo image + .pts folders and 300-VW sequences, on generated trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crct_cli.errors import CrctError
from crct_cli.io.datasets import (
    VideoSequence,
    annotation_filename,
    find_300vw_sequences,
    find_image_pts_pairs,
    find_images_without_pts,
    read_annotations,
)
from crct_cli.io.landmarks import write_pts
from crct_cli.io.video import iter_frames


def _points(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 90, size=(68, 2)).round(3)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 not decoded by the finder")
    return path


# --------------------------------------------------------------------------------------------
# 300-W / Menpo


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    root = tmp_path / "300w"
    for rel, with_pts in [
        ("lfpw/testset/image_0002.png", True),
        ("helen/trainset/100032540_1.jpg", True),
        ("helen/trainset/zz_no_markup.jpg", False),
        ("ibug/image_003_1.JPG", True),
        ("afw/134212_1.jpeg", False),
        (".cache/hidden.jpg", True),  # hidden folder: ignored
        ("afw/.x.partial.jpg", True),  # crct temporary file: ignored
    ]:
        image = _touch(root / rel)
        if with_pts:
            write_pts(image.with_suffix(".pts"), _points(len(rel)))
    (root / "README.txt").write_text("not an image")
    write_pts(root / "orphan.pts", _points(1))  # a .pts without image: not a pair
    return root


def test_pairs_are_found_recursively_and_sorted(image_tree: Path) -> None:
    pairs = find_image_pts_pairs(image_tree)
    rel = [(img.relative_to(image_tree).as_posix(), pts.name) for img, pts in pairs]
    assert rel == [
        ("helen/trainset/100032540_1.jpg", "100032540_1.pts"),
        ("ibug/image_003_1.JPG", "image_003_1.pts"),
        ("lfpw/testset/image_0002.png", "image_0002.pts"),
    ]
    for image, pts in pairs:
        assert pts.parent == image.parent and pts.stem == image.stem


def test_images_without_pts_are_listed(image_tree: Path) -> None:
    unpaired = find_images_without_pts(image_tree)
    assert [p.relative_to(image_tree).as_posix() for p in unpaired] == [
        "afw/134212_1.jpeg",
        "helen/trainset/zz_no_markup.jpg",
    ]


def test_image_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(CrctError, match="no such dataset folder"):
        find_image_pts_pairs(tmp_path / "missing")
    file = _touch(tmp_path / "a.jpg")
    with pytest.raises(CrctError, match="not a folder"):
        find_image_pts_pairs(file)
    assert find_image_pts_pairs(tmp_path) == []  # an image but no .pts


# --------------------------------------------------------------------------------------------
# 300-VW


def _sequence(root: Path, name: str, make_video, n_frames: int = 0, video: str = "vid.avi"):
    folder = root / name
    folder.mkdir(parents=True)
    codec = "mpeg4" if video.endswith(".avi") else "libx264"
    made = make_video(f"{name}_{video}", n_frames=max(n_frames, 3), codec=codec)
    made.rename(folder / video)
    for k in range(1, n_frames + 1):
        (folder / "annot").mkdir(exist_ok=True)
        write_pts(folder / "annot" / annotation_filename(k), _points(100 * int(name) + k))
    return folder


@pytest.fixture
def vw_root(tmp_path: Path, make_video) -> Path:
    root = tmp_path / "300VW_Dataset_2015_12_14"
    _sequence(root, "001", make_video, n_frames=6)
    _sequence(root, "002", make_video, video="vid.mp4")  # no annot folder
    _sequence(root, "010", make_video, n_frames=2)
    (root / "docs").mkdir()  # not a sequence: ignored
    (root / "readme.txt").write_text("x")
    return root


def test_all_sequences_in_numeric_order(vw_root: Path) -> None:
    sequences, missing = find_300vw_sequences(vw_root)
    assert missing == []
    assert [s.name for s in sequences] == ["001", "002", "010"]
    assert sequences[0] == VideoSequence("001", vw_root / "001" / "vid.avi", vw_root / "001/annot")
    assert sequences[1].video.name == "vid.mp4" and sequences[1].annot_dir is None


def test_requested_names_and_missing_ones(vw_root: Path) -> None:
    sequences, missing = find_300vw_sequences(vw_root, ["010", "404", "1", "999"])
    assert [s.name for s in sequences] == ["010", "001"]  # the order asked; "1" finds 001
    assert missing == ["404", "999"]


def test_annotations_are_numbered_from_one_in_decoding_order(vw_root: Path) -> None:
    (sequence,), _ = find_300vw_sequences(vw_root, ["001"])
    assert sequence.annot_dir is not None
    annotations = read_annotations(sequence.annot_dir)
    assert list(annotations) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(annotations[4], _points(104))
    frames = list(iter_frames(sequence.video))
    assert [f.index + 1 for f in frames] == list(annotations)


def test_a_single_sequence_folder_as_root(vw_root: Path) -> None:
    sequences, missing = find_300vw_sequences(vw_root / "010")
    assert [s.name for s in sequences] == ["010"] and missing == []


def test_bad_300vw_layouts(tmp_path: Path, vw_root: Path) -> None:
    with pytest.raises(CrctError, match="no such 300-VW folder"):
        find_300vw_sequences(tmp_path / "missing")
    with pytest.raises(CrctError, match="no 300-VW sequences"):
        find_300vw_sequences(vw_root / "docs")
    (vw_root / "003" / "annot").mkdir(parents=True)  # annotations but no video
    with pytest.raises(CrctError, match=r"003.*without a video"):
        find_300vw_sequences(vw_root)
    with pytest.raises(CrctError, match=r"003.*without a video"):
        find_300vw_sequences(vw_root, ["001", "003"])
    # Asking only for intact sequences still works.
    assert [s.name for s in find_300vw_sequences(vw_root, ["001"])[0]] == ["001"]


def test_annotation_filename() -> None:
    assert annotation_filename(1) == "000001.pts"
    assert annotation_filename(123456) == "123456.pts"
    with pytest.raises(ValueError):
        annotation_filename(0)


def test_bad_annotation_folders(tmp_path: Path) -> None:
    annot = tmp_path / "annot"
    annot.mkdir()
    assert read_annotations(annot) == {}
    write_pts(annot / "000002.pts", _points(2))
    (annot / "notes.txt").write_text("ignored")
    assert list(read_annotations(annot)) == [2]
    (annot / "2.pts").write_text((annot / "000002.pts").read_text())
    with pytest.raises(CrctError, match="annotated twice"):
        read_annotations(annot)
    (annot / "2.pts").unlink()
    write_pts(annot / "000000.pts", _points(0))
    with pytest.raises(CrctError, match="numbered from 1"):
        read_annotations(annot)
    (annot / "000000.pts").unlink()
    write_pts(annot / "frame_a.pts", _points(0))
    with pytest.raises(CrctError, match="frame_a.pts: not a frame number"):
        read_annotations(annot)
    (annot / "frame_a.pts").unlink()
    (annot / "000003.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(CrctError, match="000003.pts"):
        read_annotations(annot)
    with pytest.raises(CrctError, match="no such annotation folder"):
        read_annotations(tmp_path / "nope")
