"""``crct track --engine ray`` on a fresh local Ray instance (127.0.0.1): the same outputs as
``--engine local``, and an actor that dies costs only its video."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from test_batch import (  # noqa: F401
    KILL_W,
    SLOW_S,
    SLOW_W,
    H,
    W,
    archive,
    crct,
    fakes,
    run_interrupted,
    summary_rows,
)

from crct_cli.batch.local import STOP_GRACE_S
from crct_cli.batch.summary import read_summary

pytest.importorskip(
    "ray", reason="ray is not installed (the optional extra: pip install 'crct[ray]')"
)

from crct_cli.batch.ray_engine import RayEngine  # noqa: E402

TESTS = Path(__file__).resolve().parent


def test_ray_writes_the_points_of_the_local_engine(
    archive: Path,  # noqa: F811
    tmp_path: Path,
    make_video: Callable[..., Path],
    fakes: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_video("in/poison.mp4", n_frames=6, width=KILL_W, height=H)  # kills its actor
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a fresh local instance, not a cluster
    # Ray's workers import the fake networks by name, like a spawned local worker does
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.chdir(tmp_path)  # paths as typed, relative: Ray's workers are elsewhere
    named = archive.relative_to(tmp_path)
    local = crct("track", named, "--out", "local", "--workers", "2")
    ray = crct("track", named, "--out", "ray", "--engine", "ray", "--workers", "2")
    assert local.exit_code == ray.exit_code == 2, ray.output
    local_rows, ray_rows = summary_rows(tmp_path / "local"), summary_rows(tmp_path / "ray")
    assert {k: r["status"] for k, r in ray_rows.items()} == {
        k: r["status"] for k, r in local_rows.items()
    }
    assert ray_rows["poison"]["status"] == "failed"
    assert "Ray worker died" in ray_rows["poison"]["error"]
    # the summary, the errors and track.json name the videos as typed, as a local run does
    for key in ("input", "error"):
        assert {k: r[key] for k, r in ray_rows.items() if k != "poison"} == {
            k: r[key] for k, r in local_rows.items() if k != "poison"
        }
    assert ray_rows["bad"]["error"].startswith("in/bad.mp4: ")
    for out in ("local", "ray"):
        header = json.loads((tmp_path / out / "sub" / "b" / "track.json").read_text())
        assert header["video"] == os.path.join("in", "sub", "b.mp4")
        assert header["video_resolved"] == str(tmp_path / "in" / "sub" / "b.mp4")
    assert not (tmp_path / "ray" / "poison" / "track.json").exists()
    files = sorted(
        p.relative_to(tmp_path / "local")
        for p in (tmp_path / "local").rglob("*")
        if p.is_file() and p.name not in ("summary.csv", ".crct-input.json", "track.json")
    )
    assert len(files) > 20
    for rel in files:  # every .pts and landmarks.csv, byte for byte
        assert (tmp_path / "ray" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes()
    ray_files = {p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*.pts")}
    assert ray_files == {f for f in files if f.suffix == ".pts"}


def test_ctrl_c_lets_each_ray_worker_remove_what_it_was_writing(
    make_video: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C raises the driver's stop flag; each actor leaves by the exception Ctrl-C
    raises, so its temporary files go with it, before the actors are killed. The slow clip
    has no face: its frames are held back for a face to come (``--backfill``), so no frame
    comes out for longer than the grace period, and the actor must not wait for one."""
    (tmp_path / "in").mkdir()
    make_video("in/quick.mp4", n_frames=3, width=W, height=H)
    make_video("in/slow.mp4", n_frames=200, width=SLOW_W, height=H)  # SLOW_S a frame
    assert 50 * SLOW_S > STOP_GRACE_S  # the 50 frames --backfill holds outlast the grace
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    out = tmp_path / "out"
    _, display = run_interrupted(tmp_path / "in", out, lambda spec: RayEngine(spec, workers=2))
    assert [r.output for r in display.done] == ["quick"]
    rows = {r["output"]: r["status"] for r in read_summary(out / "summary.csv")}
    assert rows == {"quick": "ok", "slow": "pending"}
    assert not (out / "slow" / "track.json").exists()
    # the slow video was part-written when it was stopped, and took its temporary files with it
    assert [p.name for p in out.rglob("*") if ".partial" in p.name] == []


def test_more_workers_than_fit_track_on_those_that_start_and_none_fitting_is_one_line(
    archive: Path,  # noqa: F811
    tmp_path: Path,
    fakes: None,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a local instance of this machine's CPUs: one worker more than fit waited for all of
    them before tracking anything, forever; now the workers that start take the videos. A
    worker that asks for more CPUs than the machine has is one line, not a wait."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    cpus = os.cpu_count() or 1
    many = crct(
        "track", archive, "--out", tmp_path / "many", "--engine", "ray", "--workers", cpus + 1
    )
    assert many.exit_code == 2, many.output  # bad.mp4
    assert {r["status"] for r in summary_rows(tmp_path / "many").values()} == {
        "ok", "no_face", "failed"
    }  # fmt: skip
    wide = crct("track", archive, "--out", tmp_path / "wide", "--engine", "ray",
                "--threads", cpus + 1)  # fmt: skip
    assert wide.exit_code == 2 and "no Ray worker can start: each asks for" in wide.stderr
