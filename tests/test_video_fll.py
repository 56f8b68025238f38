"""FLL's first stage for video (``weights/fll_video.pt``): what loads it, what never does, and
that it reads a smeared face better than the still-image ``fll.pt``.

The smeared faces are the sample photograph smeared as ``crct train fll --motion-blur`` smears
its training faces (``crct_cli.train.data.motion_smear``), scored against crct align's points
on the sharp photograph.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from crct_cli import Tracker
from crct_cli.aligner import STILL_ALIGN, VIDEO_FLL_FILE, AlignConfig, Aligner
from crct_cli.io.images import read_image
from crct_cli.models.weights import WEIGHTS_DIR, read_manifest, update_manifest
from crct_cli.runtime import Runtime
from crct_cli.train.data import motion_smear

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGE = REPO / "samples" / "astronaut.jpg"

pytestmark = pytest.mark.skipif(
    VIDEO_FLL_FILE not in read_manifest(WEIGHTS_DIR).get("weights", {}),
    reason=f"these weights ship no {VIDEO_FLL_FILE}",
)


def first_stage_file(runtime: Runtime) -> str:
    return Path(runtime.weight_files["fll"]).name


def test_the_tracker_runs_the_video_first_stage_and_align_the_still_one() -> None:
    rt = Runtime("torch", "cpu")
    rt.aligner("none", video=True)
    assert first_stage_file(rt) == VIDEO_FLL_FILE
    still = Runtime("torch", "cpu")
    still.aligner("none", STILL_ALIGN)
    assert first_stage_file(still) == "fll.pt"

    tracker = Tracker(device="cpu", backend="torch", int8=False)
    assert Path(tracker.weight_files["fll"]).name == VIDEO_FLL_FILE
    assert tracker.describe()["video_fll"] is True
    off = Tracker(device="cpu", backend="torch", int8=False, video_fll=False)
    assert Path(off.weight_files["fll"]).name == "fll.pt"
    assert off.describe()["video_fll"] is False


def test_the_int8_graph_of_the_video_first_stage_is_shipped() -> None:
    rt = Runtime("onnx", "cpu")
    rt.aligner("none", int8=True, video=True)
    assert rt.int8 == ["fll"] and first_stage_file(rt) == VIDEO_FLL_FILE


def test_weights_without_a_video_first_stage_track_with_fll_pt(tmp_path: Path) -> None:
    """A weights folder from before (or a user's own) still tracks, with its ``fll.pt``."""
    folder = tmp_path / "w"
    folder.mkdir()
    listed = read_manifest(WEIGHTS_DIR)["weights"]
    for name in ("fll.pt", "fll_stage2.pt"):
        shutil.copy(WEIGHTS_DIR / name, folder / name)
        update_manifest(name, listed[name], folder)
    rt = Runtime("torch", "cpu", folder)
    rt.aligner("none", video=True)
    assert first_stage_file(rt) == "fll.pt"
    assert Path(rt.weight_files["fll_stage2"]).parent == folder


def test_the_video_first_stage_reads_a_smeared_face_better() -> None:
    """A face smeared over a third of its side and more: the video first stage lies far
    nearer the sharp photograph's points than fll.pt, in every direction tried."""
    image = read_image(SAMPLE_IMAGE)
    rt = Runtime("torch", "cpu")
    box = rt.detector()(image)[0].box
    reference = rt.aligner("none", STILL_ALIGN)[0](image, box[None])[0]
    lo, hi = reference.min(axis=0), reference.max(axis=0)
    tight = np.r_[lo, hi - lo]
    side, diagonal = float(max(hi - lo)), float(np.hypot(*(hi - lo)))
    one_pass = AlignConfig(refine=0)
    first = {
        name: Aligner(rt.localizer(name), "cpu", one_pass) for name in ("fll.pt", VIDEO_FLL_FILE)
    }
    rng = np.random.default_rng(0)
    errors: dict[str, list[float]] = {name: [] for name in first}
    for share in (0.3, 0.4):
        for _ in range(4):
            smeared = motion_smear(image, share * side, rng)
            for name, aligner in first.items():
                points = aligner(smeared, tight[None])[0]
                errors[name].append(float(np.linalg.norm(points - reference, axis=1).mean()))
    still, video = np.array(errors["fll.pt"]), np.array(errors[VIDEO_FLL_FILE])
    assert video.mean() < 0.75 * still.mean(), (video / diagonal, still / diagonal)
    assert np.mean(video < still) >= 0.75


def test_no_video_fll_is_recorded_and_a_change_of_it_tracks_again(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crct_cli.batch.worker import settings_of
    from crct_cli.cli import app

    assert settings_of({})["video_fll"] is True
    out = tmp_path / "run"
    video = str(REPO / "samples" / "astronaut.mp4")
    runner = CliRunner()
    still = runner.invoke(app, ["track", video, "--out", str(out), "--no-video-fll"])
    assert still.exit_code == 0, still.output
    doc = json.loads((out / "track.json").read_text())
    assert doc["config"]["video_fll"] is False
    assert json.loads((out / ".crct-input.json").read_text())["settings"]["video_fll"] is False
    first = [frame["faces"][0]["points"] for frame in doc["frames"]]
    again = runner.invoke(app, ["track", video, "--out", str(out)])  # the default: video FLL
    assert again.exit_code == 0, again.output
    doc = json.loads((out / "track.json").read_text())
    assert doc["config"]["video_fll"] is True  # tracked again, not skipped
    assert [frame["faces"][0]["points"] for frame in doc["frames"]] != first
