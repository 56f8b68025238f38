"""The synthetic sequence generators on tiny generated faces: seeds, categories, visibility."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bench_fakes import shape_in

from crct_cli import geometry
from crct_cli.bench import synth_multi, synth_video
from crct_cli.bench.multi_face import read_multi_gt
from crct_cli.bench.synth_multi import (
    MultiSynthConfig,
    in_frame_share,
    make_multi_face_videos,
    unoccluded_share,
)
from crct_cli.errors import CrctError
from crct_cli.io.datasets import read_annotations
from crct_cli.io.images import write_image
from crct_cli.io.landmarks import PTS_ORIGIN
from crct_cli.io.video import iter_frames
from crct_cli.landmarks import box_from_points
from crct_cli.models.bt import BTConfig
from crct_cli.train.bt import (
    FAST_BURST,
    FAST_STEPS,
    MOTION_SHUTTER,
    crop_frame,
    fast_walk,
    synth_sequence,
)
from crct_cli.train.data import AugmentConfig, load_faces


@pytest.fixture
def faces_dir(tmp_path: Path, face_image: Callable[..., np.ndarray]) -> Path:
    """Six cartoon faces (96 x 96) with a 68-point shape over each oval."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(6):
        image = face_image(96, 96, t=i / 6)
        write_image(folder / f"face_{i}.png", image)
        (folder / f"face_{i}.pts").write_text(
            _pts(shape_in(np.array([24.0 + i, 22.0, 48.0, 56.0])))
        )
    return folder


def _pts(points: np.ndarray) -> str:
    from crct_cli.io.landmarks import format_pts

    return format_pts(points)


def _tree(root: Path) -> dict[str, bytes]:
    """Every ground-truth file under root (the video's bytes depend on the encoder's threads)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".pts", ".json")
    }


# --------------------------------------------------------------------------------------------
# Several faces


SMALL = MultiSynthConfig(width=192, height=108, face_px=(20.0, 26.0))


def test_multi_face_sequences_are_deterministic_and_follow_the_visibility_rule(
    faces_dir: Path, tmp_path: Path
) -> None:
    a = make_multi_face_videos(faces_dir, tmp_path / "a", 2, 40, seed=3, cfg=SMALL)
    make_multi_face_videos(faces_dir, tmp_path / "b", 2, 40, seed=3, cfg=SMALL)
    make_multi_face_videos(faces_dir, tmp_path / "c", 2, 40, seed=4, cfg=SMALL)
    assert [p.name for p in a] == ["001", "002"]
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert _tree(tmp_path / "a") != _tree(tmp_path / "c")
    assert not list((tmp_path / "a").glob(".*"))  # no partial folder left behind

    for folder in a:
        doc = json.loads((folder / "faces.json").read_text())
        assert doc["frames"] == 40 and [f["role"] for f in doc["faces"]] == [
            "crossing",
            "crossing",
            "visitor",
        ]
        for face in doc["faces"]:
            annotated = set(read_annotations(folder / "faces" / str(face["gt_id"])))
            for rec in face["frames"]:
                assert rec["unoccluded"] <= rec["in_frame"] + 1e-9
                assert rec["visible"] == (rec["unoccluded"] >= 0.5)
                assert (rec["frame"] in annotated) == rec["visible"]
        visitor = [r["visible"] for r in doc["faces"][2]["frames"]]
        # enters (out at first), leaves and comes back: visible runs separated by a gap
        assert not visitor[0] and visitor[-1]
        runs = sum(1 for i in range(1, len(visitor)) if visitor[i] and not visitor[i - 1])
        assert runs == 2
        # the two crossers swap sides
        start = [f["frames"][0]["box"][0] for f in doc["faces"][:2]]
        end = [f["frames"][-1]["box"][0] for f in doc["faces"][:2]]
        assert (start[0] - start[1]) * (end[0] - end[1]) < 0
        frames = list(iter_frames(folder / "vid.mp4"))
        assert len(frames) == 40 and frames[0].image.shape == (108, 192, 3)
        truth = read_multi_gt(folder)
        assert truth.frames == 40 and list(truth.visible) == ["0", "1", "2"]
        assert sum(len(v) for v in truth.hidden.values()) == sum(
            not r["visible"] for f in doc["faces"] for r in f["frames"]
        )


def test_shares_of_a_box_in_the_frame_and_uncovered() -> None:
    box = np.array([-10.0, 0.0, 20.0, 20.0])
    assert in_frame_share(box, 100, 100) == 0.5
    assert in_frame_share(np.array([-11.0, 0.0, 20.0, 20.0]), 100, 100) == pytest.approx(0.45)
    assert in_frame_share(np.array([95.0, 95.0, 10.0, 10.0]), 100, 100) == 0.25
    assert in_frame_share(np.array([200.0, 0.0, 10.0, 10.0]), 100, 100) == 0.0
    cover = np.zeros((100, 100), np.float32)
    cover[:, :5] = 1.0  # the left 5 of the box's 10 in-frame columns
    assert unoccluded_share(box, 100, 100, cover) == pytest.approx(0.25)
    assert unoccluded_share(box, 100, 100, None) == 0.5


def test_multi_face_cli_errors_are_one_line(faces_dir: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        synth_multi.main([str(faces_dir), "--out", str(tmp_path / "o"), "--frames", "10"])
    assert stop.value.code == 2
    assert (
        capsys.readouterr().err.strip()
        == "synth_multi: error: --frames must be at least 30, got 10"
    )


# --------------------------------------------------------------------------------------------
# One face, three categories


def _video_kwargs() -> dict[str, object]:
    return {"n_videos": 2, "n_frames": 6, "size": (96, 72), "face_px": 30.0, "seed": 1}


def test_category_1_is_the_original_generator(faces_dir: Path, tmp_path: Path) -> None:
    """The default draws faces and motion exactly as before categories existed (on pixel
    centres counted from 0: the files' 300-W origin taken off)."""
    synth_video.make_synthetic_videos(faces_dir, tmp_path / "c1", **_video_kwargs())  # type: ignore[arg-type]
    faces = load_faces([faces_dir], max_face=400.0, origin=PTS_ORIGIN)
    rng = np.random.default_rng(1)
    for k, i in enumerate(rng.choice(len(faces), size=2, replace=False)):
        clean = AugmentConfig(flip=0.5, degradation=0.0, color=0.0, grayscale=0.0)
        seq = synth_sequence(faces[int(i)], 6, rng, clean, pull=0.08)
        center, side = geometry.box_center_size(box_from_points(faces[int(i)].points))
        place = geometry.crop_matrix(center, side * 96 / 30.0, 96)
        place[:, 2] -= [0, (96 - 72) / 2]
        annot = read_annotations(tmp_path / "c1" / f"{k + 1:03d}" / "annot")
        for t in range(6):
            np.testing.assert_allclose(
                annot[t + 1], geometry.apply(place, seq.points[t]), atol=1e-3
            )


def test_categories_2_and_3(faces_dir: Path, tmp_path: Path) -> None:
    for c in (1, 2, 3):
        synth_video.make_synthetic_videos(
            faces_dir, tmp_path / f"c{c}", category=c, **_video_kwargs()
        )  # type: ignore[arg-type]
    again = tmp_path / "c3-again"
    synth_video.make_synthetic_videos(faces_dir, again, category=3, **_video_kwargs())  # type: ignore[arg-type]
    one, two, three = (read_annotations(tmp_path / f"c{c}" / "001" / "annot") for c in (1, 2, 3))
    # lighting drift keeps the motion: same points, different pictures
    assert all(np.array_equal(one[k], two[k]) for k in one)
    light = [f.image.astype(float) for f in iter_frames(tmp_path / "c1" / "001" / "vid.mp4")]
    drift = [f.image.astype(float) for f in iter_frames(tmp_path / "c2" / "001" / "vid.mp4")]
    assert np.mean([np.abs(a - b).mean() for a, b in zip(light, drift, strict=True)]) > 5
    # fast motion: the same random walk, several steps per frame in bursts
    positions = np.cumsum(synth_video.plan_hard(np.random.default_rng([1, 3, 0]), 6).steps)
    for t, at in enumerate(positions):
        if at < 6:
            np.testing.assert_allclose(three[t + 1], one[at + 1], atol=1e-3)
    assert _tree(tmp_path / "c3") == _tree(again)
    assert len(three) == 6


def test_hard_plan_and_bursts_are_seeded() -> None:
    a = synth_video.plan_hard(np.random.default_rng(5), 90)
    b = synth_video.plan_hard(np.random.default_rng(5), 90)
    assert np.array_equal(a.steps, b.steps) and a.strips.keys() == b.strips.keys()
    assert a.steps[0] == 0 and set(np.unique(a.steps[1:])) <= {1, 2, 3}
    assert 0.2 < np.mean(a.steps[1:] > 1) < 0.4
    assert np.array_equal(a.noise_level, b.noise_level)
    assert 0.2 < np.mean(a.noise_level > 0) < 0.4 and set(np.unique(a.noise_level)) <= {0, 1, 2, 3}
    assert 0.1 < np.mean(a.lowres_level > 0) < 0.3 and 0.05 < len(a.strips) / 90 < 0.25
    runs = synth_video.bursts(np.random.default_rng(0), 50, 0.3, (3, 5))
    assert all(3 <= stop - start <= 5 for start, stop in runs)
    assert all(runs[i][1] < runs[i + 1][0] for i in range(len(runs) - 1))  # apart, not touching


def test_bad_category_is_one_line(faces_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CrctError, match="--category must be 1, 2 or 3"):
        synth_video.make_synthetic_videos(faces_dir, tmp_path / "x", category=4)


def test_motion_blur_smears_fast_frames_along_the_path(faces_dir: Path) -> None:
    """``crct train bt --motion-blur``: a blurred sequence's crop is the mean picture over its
    exposure, so a still face is left as it is and a moving one loses detail. The shutter is
    drawn after everything else, so the blurred sequence moves exactly as the sharp one."""
    (face,) = load_faces([faces_dir])[:1]
    clean = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    plain = synth_sequence(face, 8, np.random.default_rng(3), clean)
    blurred = synth_sequence(face, 8, np.random.default_rng(3), clean, motion_blur=1.0)
    assert plain.shutter == 0.0 and MOTION_SHUTTER[0] <= blurred.shutter <= MOTION_SHUTTER[1]
    assert np.array_equal(plain.transforms, blurred.transforms)
    assert np.array_equal(plain.points, blurred.points) and np.array_equal(
        plain.image, blurred.image
    )
    cfg, rng = BTConfig(input_size=64), np.random.default_rng(0)
    box = box_from_points(plain.points[4])
    # the same path, moving fast to the right: the sharp and the smeared frame 4
    for seq in (plain, blurred):
        seq.transforms = np.stack([seq.transforms[0]] * 8)
        seq.transforms[:, 0, 2] += 12.0 * np.arange(8)
        seq.occlusion[:] = False
    sharp, _ = crop_frame(plain, 4, box, cfg, rng)
    smeared, _ = crop_frame(blurred, 4, box, cfg, rng)

    def detail(crop: np.ndarray) -> float:  # horizontal gradient energy
        return float(np.abs(np.diff(crop.astype(float), axis=1)).mean())

    assert detail(smeared) < 0.8 * detail(sharp)
    assert np.abs(smeared.astype(float) - sharp).mean() > 1.0
    # a face that does not move is not smeared
    plain.transforms = blurred.transforms = np.stack([plain.transforms[4]] * 8)
    still_sharp, _ = crop_frame(plain, 4, box, cfg, None)
    still_blurred, _ = crop_frame(blurred, 4, box, cfg, rng)
    assert np.abs(still_blurred.astype(int) - still_sharp.astype(int)).max() <= 1


def test_fast_walk_moves_in_bursts_of_several_steps() -> None:
    """``fast_walk``: every frame advances one step except in bursts, whose frames each take
    the same 2-4 steps for 2-8 frames; over many sequences about two fifths of the frames are
    fast, and no two seeds give the same plan."""
    plans = [fast_walk(40, np.random.default_rng(seed)) for seed in range(200)]
    for steps in plans:
        assert steps[0] == 0 and steps[1:].min() >= 1
        assert steps.max() <= FAST_STEPS[1]
        fast = np.flatnonzero(steps > 1)
        # a burst is a run of equal steps; runs may touch, so only the longest bound holds
        runs = np.split(fast, np.flatnonzero(np.diff(fast) > 1) + 1) if fast.size else []
        for run in runs:
            assert run.size >= min(FAST_BURST[0], 40 - run[0])
    share = np.mean([(p[1:] > 1).mean() for p in plans])
    assert 0.25 < share < 0.6
    assert len({p.tobytes() for p in plans}) > 150


def test_fast_motion_sequence_moves_further_per_frame(faces_dir: Path) -> None:
    """``crct train bt --fast-motion``: with share 0 nothing more is drawn (the recorded BT
    command still makes its sequences); with share 1 every sequence follows a fast walk, its
    frames the walk's positions after each frame's steps, so the face moves further between
    frames than in the plain sequences of the same seeds."""
    (face,) = load_faces([faces_dir])[:1]
    clean = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    plain = synth_sequence(face, 12, a, clean)
    same = synth_sequence(face, 12, b, clean, fast_motion=0.0)
    assert np.array_equal(plain.points, same.points) and a.random() == b.random()

    def moves(fast: float) -> np.ndarray:
        out = []
        for seed in range(30):
            seq = synth_sequence(face, 12, np.random.default_rng(seed), clean, fast_motion=fast)
            assert seq.points.shape == (12, 68, 2) and seq.transforms.shape == (12, 2, 3)
            centres = np.stack(
                [box_from_points(p)[:2] + box_from_points(p)[2:] / 2 for p in seq.points]
            )
            out.append(np.linalg.norm(np.diff(centres, axis=0), axis=1))
        return np.concatenate(out)

    slow, fast = moves(0.0), moves(1.0)
    assert np.percentile(fast, 95) > 1.3 * np.percentile(slow, 95)
    assert fast.mean() > slow.mean()
