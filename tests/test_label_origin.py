"""Label files that count pixels from 1 (300-W's .pts): ``--label-origin`` and the generators.

Crops, flips and rescales compute pixel centres counted from 0. Taken as read, a label counted
from 1 sits one pixel right of and below its mark; a mirrored crop turns that into one pixel
left, so FLL was taught x counted from 0 and y counted from 1. With the origin given, the
points sit on their marks in every crop, and FLL answers in pixel centres counted from 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from test_geometry_models import FLL_CFG, ibug_template
from test_stage2 import write_generated_faces

from crct_cli.io.images import write_image
from crct_cli.io.landmarks import write_pts
from crct_cli.landmarks import FLIP_PERMUTATION
from crct_cli.models.weights import read_manifest, save_weights
from crct_cli.train.data import NO_AUGMENT, augmented_crop, load_faces
from crct_cli.train.fll import TrainFLLConfig, train_fll

#: landmarks at least 10 px apart: both jaw ends, the chin, the outer eye and mouth corners
DOTS = (0, 16, 8, 36, 45, 48, 54)


def dotted_face(folder: Path) -> np.ndarray:
    """A black picture with a Gaussian dot on each of :data:`DOTS`, its .pts written counted
    from 1 (the dot of a point at ``p`` lies at pixel centre ``p - 1``); the true centres."""
    centres = ibug_template() * 1.6 + np.array([120.3, 110.7])
    ys, xs = np.mgrid[0:240, 0:240].astype(np.float64)
    image = np.zeros((240, 240), np.float64)
    for j in DOTS:
        x, y = centres[j]
        image += 250 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 2.0**2))
    folder.mkdir()
    grey = image.clip(0, 255).astype(np.uint8)
    write_image(folder / "dots.png", np.repeat(grey[..., None], 3, axis=2))
    write_pts(folder / "dots.pts", centres + 1.0)
    return centres


def dot_centroid(crop: np.ndarray, near: np.ndarray, half: int = 5) -> np.ndarray:
    """The intensity centroid of the dot around ``near`` (crop pixels)."""
    x0, y0 = (int(round(v)) for v in near)
    patch = crop[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1, 0].astype(np.float64)
    ys, xs = np.mgrid[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1]
    return np.array([(xs * patch).sum(), (ys * patch).sum()]) / patch.sum()


def crop_errors(face, flip: bool) -> np.ndarray:
    """Each dot's point minus its centroid, in a (mirrored) training crop."""
    aug = dataclasses.replace(NO_AUGMENT, flip=1.0 if flip else 0.0)
    crop, points = augmented_crop(face, np.random.default_rng(0), 96, 1.35, aug)
    perm = list(FLIP_PERMUTATION)
    rows = []
    for j in DOTS:
        p = points[perm[j]] if flip else points[j]  # after a flip, point perm[j] shows mark j
        rows.append(p - dot_centroid(crop, p))
    return np.array(rows)


def test_points_counted_from_one_sit_on_their_marks_in_mirrored_and_rescaled_crops(
    tmp_path: Path,
) -> None:
    centres = dotted_face(tmp_path / "faces")
    # max_face below the face's side: the picture is also rescaled on reading
    (given,) = load_faces([tmp_path / "faces"], max_face=100.0, desc="t", origin=1.0)
    (as_read,) = load_faces([tmp_path / "faces"], max_face=100.0, desc="t")
    f = 100.0 / max(np.ptp(centres, 0))
    assert given.image.shape[0] == round(240 * f)  # rescaled
    assert np.allclose(given.points, (centres + 0.5) * f - 0.5, atol=1e-3)
    for flip in (False, True):
        assert np.abs(crop_errors(given, flip)).max() < 0.15, flip
    # as read, the label's extra pixel moves x to the other side of the mark once mirrored:
    # the two crops teach different x conventions, and the same y
    plain, mirrored = crop_errors(as_read, False), crop_errors(as_read, True)
    assert plain[:, 0].mean() > 0.3 and mirrored[:, 0].mean() < -0.3
    assert plain[:, 1].mean() > 0.3 and mirrored[:, 1].mean() > 0.3


def test_training_with_an_origin_records_it_in_the_command_and_the_weights(
    tmp_path: Path,
) -> None:
    data = write_generated_faces(tmp_path / "faces")
    out = tmp_path / "w" / "fll.pt"
    cfg = TrainFLLConfig([data], [data], steps=2, batch=4, out=out, label_origin=1.0)
    cfg.model, cfg.checkpoint = FLL_CFG, tmp_path / "ckpt" / "a.ckpt"
    train_fll(cfg, log=lambda _m: None)
    entry = read_manifest(out.parent)["weights"]["fll.pt"]
    assert "--label-origin 1 " in entry["command"]
    from crct_cli.models.fll import load_localizer
    from crct_cli.models.weights import load_weights

    blob = load_weights(out, "fll")
    assert load_localizer(blob).config.label_origin == 1.0
    # without the option nothing is recorded and older files read as 0
    assert "--label-origin" not in " ".join(TrainFLLConfig([data], [data]).options())
    old = {k: v for k, v in blob["config"]["model"].items() if k != "label_origin"}
    save_weights(tmp_path / "old.pt", "fll", {"model": old}, blob["state_dict"])
    assert load_localizer(load_weights(tmp_path / "old.pt", "fll")).config.label_origin == 0.0


def test_synthetic_sequences_put_their_markup_on_the_face_mirrored_or_not(
    tmp_path: Path,
) -> None:
    """The sequence generator mirrors half its stills: on pixel centres counted from 0 the
    mirrored markup stays on its marks, and the frames' .pts count them from 0 as crct does."""
    from crct_cli.bench.synth_video import make_synthetic_videos
    from crct_cli.io.datasets import read_annotations
    from crct_cli.io.video import iter_frames

    dotted_face(tmp_path / "one")
    faces = tmp_path / "faces"
    faces.mkdir()
    for k in range(4):  # the same dotted still four times: four sequences, mirrored or not
        for ext in ("png", "pts"):
            (faces / f"dots{k}.{ext}").write_bytes((tmp_path / "one" / f"dots.{ext}").read_bytes())
    kwargs = {"n_videos": 4, "n_frames": 2, "size": (240, 180), "face_px": 110.0, "seed": 3}

    def worst_errors(out: Path, origin: float | None) -> list[float]:
        make_synthetic_videos(faces, out, origin=origin, **kwargs)  # type: ignore[arg-type]
        worst = []
        for k in range(4):
            folder = out / f"{k + 1:03d}"
            annot = read_annotations(folder / "annot")
            frames = [f.image for f in iter_frames(folder / "vid.mp4")]
            errors = [
                np.abs(annot[t + 1][j] - dot_centroid(frame, annot[t + 1][j]))
                for t, frame in enumerate(frames)
                for j in DOTS
            ]
            worst.append(float(np.max(errors)))
        return worst

    given, as_read = worst_errors(tmp_path / "given", 1.0), worst_errors(tmp_path / "read", None)
    assert max(given) < 0.35
    # the points as read: every sequence's markup a pixel off its marks (right and down as
    # written, and to the left once mirrored)
    assert min(as_read) > 0.8


def test_the_benchmark_takes_a_ground_truths_origin_off_before_scoring(tmp_path: Path) -> None:
    """``crct benchmark --gt-origin 1``: 300-W's own files against points counted from 0."""
    import json

    from test_benchmark_cli import crct, one_line_error

    rng = np.random.default_rng(0)
    (tmp_path / "gt").mkdir()
    (tmp_path / "pred").mkdir()
    for k in range(3):
        truth = ibug_template() * (1.0 + 0.2 * k) + 100.0  # pixel centres counted from 0
        write_pts(tmp_path / "gt" / f"f{k}.pts", truth + 1.0)  # as 300-W writes them
        write_pts(tmp_path / "pred" / f"f{k}.pts", truth + rng.normal(0, 0.2, truth.shape))
    scores = {}
    for origin in ("0", "1"):
        out = tmp_path / f"score{origin}"
        args = ["--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out]
        result = crct("benchmark", *args, "--gt-origin", origin)
        assert result.exit_code == 0, result.output
        scores[origin] = json.loads((out / "results.json").read_text())
    assert scores["1"]["gt_origin"] == 1.0 and scores["0"]["gt_origin"] == 0.0
    diagonals = [np.hypot(*np.ptp(ibug_template() * (1.0 + 0.2 * k), 0)) for k in range(3)]
    # the noise alone with the origin off (0.2 px per axis), the files' extra pixel without
    assert scores["1"]["mean_nme"] < 0.3 / min(diagonals)
    assert scores["0"]["mean_nme"] > 1.2 / max(diagonals)
    assert "--gt-origin" in one_line_error(crct("benchmark", "--speed", "--gt-origin", "1"))
    multi = ["benchmark", "--dataset", "multi", "--root", tmp_path, "--gt-origin", "1"]
    assert "--gt-origin" in one_line_error(crct(*multi))  # crct's own format, counted from 0


@pytest.mark.parametrize("kind", ["fv", "bt", "finder"])
def test_fv_bt_and_the_finder_read_and_record_the_label_origin_as_fll_does(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``crct train fv|bt|finder --label-origin 1``: the faces are read with the files' origin
    taken off (training and validation alike), and the recorded command carries it only when
    given, so the shipped files' commands still make them."""
    import importlib

    from typer.testing import CliRunner

    from crct_cli.cli import app
    from crct_cli.errors import CrctError

    module = importlib.import_module(f"crct_cli.train.{kind}")
    origins: list[float | None] = []

    def reading(*args: object, **kwargs: object) -> list:
        origins.append(kwargs.get("origin"))  # type: ignore[arg-type]
        if len(origins) == 2:
            raise CrctError("stopped after reading the faces")
        return []

    monkeypatch.setattr(module, "load_faces", reading)
    data = tmp_path / "faces"
    data.mkdir()
    for given, want in ((["--label-origin", "1"], 1.0), ([], None)):
        origins.clear()
        args = ["train", kind, str(data), "--val", str(data), *given, "--steps", "1"]
        args += ["--out", str(tmp_path / f"{kind}.pt"), "--checkpoint", str(tmp_path / "c.ckpt")]
        result = CliRunner().invoke(app, args)
        assert "stopped after reading the faces" in result.stderr, result.output
        assert origins == [want, want]
    config = getattr(
        module, {"fv": "TrainFVConfig", "bt": "TrainBTConfig"}.get(kind, "TrainFinderConfig")
    )
    with_origin = config([data], [data], label_origin=1.0).options()
    assert with_origin[with_origin.index("--label-origin") + 1] == "1"
    assert "--label-origin" not in config([data], [data]).options()
