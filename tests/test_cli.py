"""The ``crct`` command line: help, one-line errors with exit 2, benchmark numbers end to end."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer.main
from typer.testing import CliRunner

from crct_cli import __version__
from crct_cli.cli import PANEL_HELP_COLUMNS, app
from crct_cli.io.images import write_image
from crct_cli.io.landmarks import write_pts

COMMANDS = ("track", "live", "align", "draw", "denoise", "degrade", "benchmark", "train")
runner = CliRunner()


def crct(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_help_lists_the_six_commands() -> None:
    result = crct("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.stdout
    assert crct("--version").stdout.strip() == f"crct {__version__}"


def help_panels(command: str) -> dict[str, list[str]]:
    """``crct COMMAND --help`` (wide, so no flag wraps) as {panel title: the flags it lists}."""
    panels: dict[str, list[str]] = {}
    title = ""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    for line in result.stdout.splitlines():
        head = re.match(r"\s*╭─ (.+?) ─", line)
        if head:
            title = head.group(1)
            panels[title] = []
        flag = re.match(r"│ [ *]? {0,4}(--[a-z0-9-]+)", line)
        if flag and title:
            panels[title].append(flag.group(1))
    return panels


@pytest.mark.parametrize(
    ("command", "common", "grouped"),
    [
        (
            "track",
            ["--out", "--overlay", "--faces", "--mode", "--overwrite"],
            {"--tb": "Algorithm 1", "--device": "Networks", "--workers": "Many videos"},
        ),
        (
            "benchmark",
            ["--pred", "--gt", "--out"],
            {"--dataset": "Datasets", "--lost-follow": "Video methods", "--pairs": "Speed"},
        ),
    ],
)
def test_long_help_screens_group_their_options(
    command: str, common: list[str], grouped: dict[str, str]
) -> None:
    """The options most runs need stay under "Options"; the tracker's many switches, the
    speed settings and the batch engine get panels of their own, each option listed once."""
    panels = help_panels(command)
    listed = [flag for flags in panels.values() for flag in flags]
    sub = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    declared = {
        name for p in sub.params for name in p.opts if name.startswith("--") and name != "--help"
    }
    assert set(listed) - {"--help"} == declared
    assert len(listed) == len(set(listed))
    assert set(common) <= set(panels["Options"])
    for flag, panel in grouped.items():
        (where,) = [title for title, flags in panels.items() if flag in flags]
        assert where.startswith(panel), (flag, where)
    assert len(panels) >= 4


def test_python_dash_m_runs_the_same_app() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "crct_cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert all(name in done.stdout for name in COMMANDS)


def help_description(args: list[str], width: int) -> list[list[str]]:
    """The prose under ``Usage:`` in ``crct ARGS --help`` at WIDTH columns, in paragraphs
    (up to the first panel, or on a narrow terminal the first plain heading)."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    headings = ("Arguments:", "Options:", "Commands:")
    end = next(
        i for i, line in enumerate(lines) if line.lstrip().startswith("╭") or line in headings
    )
    paragraphs: list[list[str]] = [[]]
    for line in lines[start:end]:
        if line.strip():
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


@pytest.mark.parametrize("width", [60, 80, 100, 130])
@pytest.mark.parametrize("args", [["track"], ["denoise"], ["train", "fll"], ["benchmark"]])
def test_help_prose_wraps_once_at_any_width(args: list[str], width: int) -> None:
    """A docstring's source line breaks do not survive into the help: each paragraph wraps at
    the terminal's width, so no line ends where the next word would still have fitted."""
    # panels pad the prose by one column each side; click's plain help (under
    # PANEL_HELP_COLUMNS) indents it by two within a width two under the terminal's
    margin = 2 if width >= PANEL_HELP_COLUMNS else 4
    for paragraph in help_description(args, width):
        for line, after in zip(paragraph, paragraph[1:], strict=False):
            assert len(line) + 1 + len(after.split()[0]) > width - margin, (line, after)
            assert len(line) <= width - margin, line
    command = typer.main.get_command(app)
    for name in args:
        command = command.commands[name]  # type: ignore[attr-defined]
    words = " ".join(" ".join(p) for p in help_description(args, 200)).split()
    assert words == command.help.split()  # every word shown, in order, none added


@pytest.mark.parametrize("width", [40, 60, 79, 80, 100, 119, 120, 140])
@pytest.mark.parametrize("args", [["track"], ["benchmark"], ["align"], ["train", "fll"]])
def test_every_option_name_is_shown_whole_at_any_width(args: list[str], width: int) -> None:
    """Typer's panels cut long names to fit ("--no-relaxed-redete…" at 80 columns): every
    name must be readable and typable as shown, and nothing cut to an ellipsis."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    shown = set(re.findall(r"--[a-z0-9][a-z0-9-]*", result.stdout))
    command = typer.main.get_command(app)
    for name in args:
        command = command.commands[name]  # type: ignore[attr-defined]
    for param in command.params:
        for name in [*param.opts, *param.secondary_opts]:
            if name.startswith("--"):
                assert name in shown, (name, width)
    panels = "╭" in result.stdout
    assert panels == (width >= PANEL_HELP_COLUMNS)


@pytest.mark.parametrize("width", [40, 60, 79])
@pytest.mark.parametrize("args", [["track"], ["align"], ["train", "fll"]])
def test_plain_help_leaves_the_option_help_room_to_read(args: list[str], width: int) -> None:
    """Below the panels, click's option column (up to 30 wide) left an 8-letter column for
    the help at 40: the name column is now at most a quarter of the width, long names have
    their help below them, and no help line runs past the terminal (a name is shown whole)."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    options = lines[lines.index("Options:") + 1 :]
    help_lines = [line for line in options if line.startswith(" " * 5) and line.strip()]
    assert all(len(line) <= width for line in help_lines)
    indent = {len(line) - len(line.lstrip()) for line in help_lines}
    assert max(indent) <= width // 4 + 4  # the name column, its margin and spacing
    widths = sorted(len(line.strip()) for line in help_lines)
    assert widths[len(widths) // 2] >= (width - max(indent)) // 2  # lines half full or more


@pytest.mark.parametrize("width", [40, 80])
@pytest.mark.parametrize("args", [["track"], ["live"], ["benchmark"]])
def test_plain_help_never_breaks_a_flag_at_its_hyphens(args: list[str], width: int) -> None:
    """click wrapped help at hyphens: "--no-shot-cuts" ended a line as "--no-", which no one
    can type; lines now break at spaces, so every flag the help names is whole."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line for line in lines if re.search(r"[A-Za-z]-$", line)] == []
    assert "--no-shot-cuts" in result.stdout


@pytest.mark.parametrize("width", [30, 50, 79, 120])
@pytest.mark.parametrize("args", [[], ["train"]])
def test_a_group_s_commands_are_described_whole_at_any_width(args: list[str], width: int) -> None:
    """Each command's description (the first paragraph of its help) is shown in full, wrapped
    on a narrow terminal: click's plain help cut it to the width left ("Draw...")."""
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.replace("│", " ").split())
    group = typer.main.get_command(app)
    for name in args:
        group = group.commands[name]  # type: ignore[attr-defined]
    for command in group.commands.values():  # type: ignore[attr-defined]
        first = " ".join(command.help.split("\n\n")[0].split())
        assert first in shown or first.replace(" ", "") in shown.replace(" ", ""), first


@pytest.mark.parametrize("width", [60, 100])
@pytest.mark.parametrize("args", [[], ["train"]])
def test_a_group_named_alone_shows_its_help_at_any_width(args: list[str], width: int) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    assert f"Usage: crct {' '.join(args)}".rstrip() in result.stdout
    assert ("╭" in result.stdout) == (width >= PANEL_HELP_COLUMNS)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "face.png"
    write_image(path, np.full((16, 16, 3), 90, np.uint8))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["degrade", "{tmp}/missing.png", "--out", "{tmp}/o", "-t", "blur", "-l", "1"], "no such"),
        (["degrade", "{img}", "--out", "{tmp}/o", "--type", "fog", "--level", "1"], "fog"),
        (["degrade", "{img}", "--out", "{tmp}/o", "--type", "blur", "--level", "5"], "level"),
        (["degrade", "{img}", "--out", "{tmp}/o", "--type", "blur", "--level", "x"], "--level"),
        (["degrade", "{img}", "--out", "{tmp}/face.png/sub", "-t", "blur", "-l", "1"], "folder"),
        (["degrade", "{tmp}/bad.jpg", "--out", "{tmp}/o", "-t", "blur", "-l", "1"], "bad.jpg"),
        (["degrade", "{img}", "--out", "{tmp}/o", "--colour"], "--colour"),
        (["benchmark", "--pred", "{tmp}", "--gt", "{tmp}/nothing"], "nothing"),
        (["benchmark", "--pred", "{tmp}"], "--gt"),
        (["benchmark", "--pred", "{tmp}", "--gt", "{tmp}", "--dataset", "300vw"], "--dataset"),
        (["benchmark", "--pred", "{tmp}", "--gt", "{tmp}", "--norm", "eyes"], "eyes"),
        (["benchmark", "--pred", "{tmp}", "--gt", "{tmp}", "--gt-origin", "5"], "from -1 to 1 px"),
        (["nonsense"], "nonsense"),
        (["track", "{tmp}/missing.mp4", "--out", "{tmp}/o"], "no such video"),
        (["track", "{img}", "--out", "{tmp}/o", "--mode", "magic"], "--mode"),
        (["track", "{img}", "--out", "{tmp}/o", "--init-box", "1,2,3"], "--init-box"),
        (["track", "{img}", "--out", "{tmp}/o", "--init-box", "1,2,-3,4"], "--init-box"),
        (["track", "{img}", "--out", "{tmp}/o", "--init-box", "nan,2,3,4"], "--init-box"),
        (["track", "{img}", "--out", "{tmp}/o", "--tb", "nan"], "--tb"),
        (["track", "{img}", "--out", "{tmp}/o", "--tb", "-1"], "--tb"),
        (["track", "{img}", "--out", "{tmp}/o", "--tc", "2"], "--tc"),
        (["track", "{img}", "--out", "{tmp}/o", "--seq-bt", "0"], "--seq-bt"),
        (["benchmark", "--dataset", "300vw", "--tc", "inf"], "--tc"),
        (["benchmark", "--pred", "{tmp}", "--gt", "{tmp}", "--gt-origin", "nan"], "--gt-origin"),
        (["track", "{img}", "--out", "{tmp}/o", "--device", "tpu"], "--device"),
        (["track", "{img}", "--out", "{tmp}/o", "--smooth-cutoff", "0"], "--smooth-cutoff"),
        (["track", "{img}", "--out", "{tmp}/o", "--smooth-beta", "-1"], "--smooth-beta"),
        (["benchmark", "--dataset", "300vw", "--smooth-cutoff", "-2"], "--smooth-cutoff"),
        (["align", "{tmp}/missing.png", "--out", "{tmp}/o"], "no such file"),
        (["align", "{tmp}", "--out", "{tmp}"], "the output folder cannot be the input folder"),
        (["align", "{img}", "--out", "{tmp}"], "face.pts would be written beside face.png"),
        (["align", "{tmp}/notes.txt", "--out", "{tmp}/o"], "not an image"),
        (["align", "{tmp}/clip.mp4", "--out", "{tmp}/o"], "a video; crct track follows faces"),
        (["align", "{img}", "--out", "{tmp}/o", "--rotate", "45"], "--rotate must be 0, 90"),
        (["align", "{img}", "--out", "{tmp}/o", "--min-face", "5"], "--min-face must be >= 12"),
        (["track", "{img}", "--out", "{tmp}/o", "--min-face", "11"], "--min-face must be >= 12"),
        (["denoise", "{img}", "--out", "{tmp}/o", "--min-face", "0"], "--min-face must be >= 12"),
        (["track", "{img}", "--out", "{tmp}/o", "--min-face", "0%"], "--min-face must be a share"),
        (["align", "{img}", "--out", "{tmp}/o", "--min-face", "big"], "--min-face must be whole"),
        (["align", "{img}", "--out", "{tmp}/o", "--rotate", "auto", "--box-from-pts"], "--rotate"),
        (["train", "fll", "{tmp}/nowhere", "--steps", "1"], "no such data folder"),
        (["train", "fv", "{tmp}", "--val", "{tmp}", "--steps", "1"], "fv.pt is a weight file"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--loss", "l2"], "--loss"),
        (["train", "fadenn", "{tmp}", "--val", "{tmp}", "--loss", "l2"], "--loss"),
        (["train", "fadenn", "{tmp}", "--val", "{tmp}", "--untouched", "fog"], "--untouched"),
        (
            [
                "train",
                "fadenn",
                "{tmp}",
                "--val",
                "{tmp}",
                "--variant",
                "d",
                "--untouched",
                "scale",
            ],
            "--untouched",
        ),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--freeze-global"], "--freeze-global"),
        (["train", "fv", "{tmp}", "--val", "{tmp}", "--stack", "1.5"], "--stack"),
        (["train", "finder", "{tmp}/nowhere", "--val", "{tmp}"], "no such data folder"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--degradation", "2"], "--degradation"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--motion-blur", "1.5"], "--motion-blur"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--local-steps", "2"], "--local-steps"),
        (["train", "bt", "{tmp}", "--val", "{tmp}", "--fast-motion", "2"], "--fast-motion"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--shadow-dark", "0.5"], "--shadow-dark"),
        (
            ["train", "fll", "{tmp}", "--val", "{tmp}", "--motion-blur-max", "1.2"],
            "--motion-blur-max",
        ),
        (
            ["train", "fll", "{tmp}", "--val", "{tmp}", "--motion-blur", "0.5"]
            + ["--motion-blur-max", "0.01"],
            "--motion-blur-max",
        ),
        (["track", "--", "{tmp}/-a.mp4", "--out", "{tmp}/o"], "'--out' comes after '--'"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--device", "tpu"], "--device"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--workers", "-1"], "--workers"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--max-face", "8"], "--max-face"),
        (["train", "fll", "{tmp}", "--val", "{tmp}", "--minutes", "1", "--resume"], "--minutes"),
        (
            ["train", "fll", "{tmp}", "--val", "{tmp}", "--stage", "2", "--from-scratch"]
            + ["--init", "{tmp}/x.pt"],
            "--from-scratch",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, image: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "clip.mp4").write_bytes(b"")  # the name alone says video
    argv = [a.format(tmp=tmp_path, img=image) for a in args]
    line = assert_one_line_error(crct(*argv))
    assert line.startswith("crct: error: ") and message in line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*"))


def test_interrupt_exits_130_and_os_error_is_one_line(
    tmp_path: Path, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import crct_cli.degrade

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(crct_cli.degrade, "plan_degrade", interrupted)
    result = crct("degrade", image, "--out", tmp_path / "o", "-t", "blur", "-l", "1")
    assert result.exit_code == 130 and "Traceback" not in result.output

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device", "o/face.png")

    monkeypatch.setattr(crct_cli.degrade, "plan_degrade", disk_full)
    line = assert_one_line_error(crct("degrade", image, "--out", tmp_path / "o", "-t", "blur"))
    assert line == "crct: error: o/face.png: No space left on device"


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is POSIX's")
def test_a_scheduler_s_sigterm_stops_every_command_as_ctrl_c_does(tmp_path: Path) -> None:
    """timeout, SLURM and docker stop send SIGTERM: every command stops as on Ctrl-C, one line
    and exit 130. Only track, align, draw and live did; degrade (here), denoise, benchmark
    and train ended silently with 143, their temporary files left."""
    import signal

    code = (
        "import sys, time\n"
        "import crct_cli.degrade\n"
        "def working(*args, **kwargs):\n"
        "    print('working', flush=True)\n"
        "    time.sleep(60)\n"
        "crct_cli.degrade.plan_degrade = working\n"
        "from crct_cli.cli import app\n"
        "sys.argv = ['crct', 'degrade', sys.argv[1], '--out', sys.argv[2], '-t', 'blur']\n"
        "app()\n"
    )
    (tmp_path / "face.png").write_bytes(b"")
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "face.png"), str(tmp_path / "o")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "working"
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130 and stderr.strip() == "crct: interrupted", stderr


def test_degrade_command_writes_and_reports(tmp_path: Path, image: Path) -> None:
    result = crct("degrade", image, "--out", tmp_path / "o", "--type", "scale", "--level", "2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "face.png").is_file()
    assert "1 image(s)" in result.stderr
    result = crct("degrade", image, "--out", tmp_path / "all", "--all", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "all" / "blur" / "3" / "face.png").is_file()


def test_degrade_progress_bar_on_a_terminal(
    tmp_path: Path, image: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich then draws its live progress bar
    result = crct("degrade", image, "--out", tmp_path / "o", "--all")
    assert result.exit_code == 0, result.output
    assert "13 sets" in result.stderr


def face(dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """68 points with a 30 x 40 box (diagonal 50), shifted by (dx, dy)."""
    pts = np.column_stack([np.linspace(0.0, 30.0, 68), np.linspace(0.0, 40.0, 68)])
    return pts + (100.0 + dx, 50.0 + dy)


def test_benchmark_scores_generated_pts(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    offsets = {"a.pts": (3.0, 4.0), "sub/b.pts": (0.0, 1.0), "sub/c.pts": (30.0, 40.0)}
    for rel, (dx, dy) in offsets.items():
        (gt / rel).parent.mkdir(parents=True, exist_ok=True)
        (pred / rel).parent.mkdir(parents=True, exist_ok=True)
        write_pts(gt / rel, face())
        write_pts(pred / rel, face(dx, dy))
    write_pts(gt / "sub" / "missing.pts", face())
    write_pts(pred / "extra.pts", face())
    result = crct("benchmark", "--pred", pred, "--gt", gt, "--out", tmp_path / "res")
    assert result.exit_code == 0, result.output
    assert "a.pts" in result.stdout and "missing" in result.stdout

    summary = json.loads((tmp_path / "res" / "results.json").read_text())
    errors = [5 / 50, 1 / 50, 50 / 50]  # offset length / box diagonal
    assert summary["count"] == 4 and summary["missing"] == 1 and summary["evaluated"] == 3
    assert summary["unmatched_predictions"] == 1
    assert summary["mean_nme"] == pytest.approx(np.mean(errors))
    assert summary["failure_rate"] == pytest.approx(3 / 4)  # 0.1, 1.0 and the missing one
    assert summary["auc"] == pytest.approx((0.08 - 0.02) / 0.08 / 4)
    assert summary["normalization"] == "diagonal"

    with open(tmp_path / "res" / "per_file.csv", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    assert float(rows["a.pts"]["nme"]) == pytest.approx(0.1)
    assert rows["sub/missing.pts"]["missing"] == "1" and rows["sub/missing.pts"]["nme"] == ""


def test_benchmark_malformed_pts_names_the_file_and_scores_the_others(tmp_path: Path) -> None:
    """A prediction that cannot be read (too few points, NaN for "no face") is scored as
    missing, a ground-truth file that cannot be scored (another markup) is left out; each is
    said with its file's name and listed in results.json, and the other files are scored."""
    for d in ("gt", "pred"):
        (tmp_path / d).mkdir()
        for name in ("a", "b", "c", "d"):
            write_pts(tmp_path / d / f"{name}.pts", face())
    (tmp_path / "pred" / "a.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    (tmp_path / "pred" / "b.pts").write_text(
        "version: 1\nn_points: 68\n{\n" + "nan nan\n" * 68 + "}\n"
    )
    write_pts(tmp_path / "gt" / "c.pts", face()[:51])  # 300-W's inner points only
    done = crct("benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                "--out", tmp_path / "out")  # fmt: skip
    assert done.exit_code == 0, done.output
    said = " ".join(done.stderr.split())
    assert "2 prediction file(s) unreadable, scored as missing; the first:" in said
    assert "a.pts: expected 68 points, found 1" in said
    assert "1 ground-truth file(s) left out; the first:" in said and "c.pts" in said
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["count"] == 3 and doc["missing"] == 2 and doc["failure_rate"] == pytest.approx(2 / 3)
    assert [u["file"] for u in doc["unreadable_predictions"]] == ["a.pts", "b.pts"]
    assert [u["file"] for u in doc["skipped_ground_truth"]] == ["c.pts"]
    (tmp_path / "gt" / "d.pts").unlink()
    for name in ("a", "b"):
        write_pts(tmp_path / "gt" / f"{name}.pts", face()[:51])
    line = assert_one_line_error(
        crct("benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt")
    )
    assert "no ground-truth file could be scored" in line and "expected 68 points" in line


def test_benchmark_points_to_nearest_when_further_faces_go_unscored(tmp_path: Path) -> None:
    for d in ("gt", "pred"):
        (tmp_path / d).mkdir()
        write_pts(tmp_path / d / "a.pts", face())
    write_pts(tmp_path / "pred" / "a_1.pts", face() + 40.0)  # crct align's second face
    plain = crct("benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt")
    assert plain.exit_code == 0 and "1 .pts file(s) of further faces" in plain.stderr
    nearest = crct("benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--nearest")
    assert nearest.exit_code == 0 and "further faces" not in nearest.stderr


def test_benchmark_without_pairs_is_an_error(tmp_path: Path) -> None:
    for d, name in (("gt", "a.pts"), ("pred", "b.pts")):
        (tmp_path / d).mkdir()
        write_pts(tmp_path / d / name, face())
    line = assert_one_line_error(
        crct("benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt")
    )
    assert "matches" in line and "written differently" not in line


def test_benchmark_pairs_an_upper_case_suffix_and_hints_at_other_padding(tmp_path: Path) -> None:
    """Files pair by name: NAME.PTS (as some Windows tools write) pairs with NAME.pts; frames
    numbered 1.pts... against 000001.pts... pair with nothing, and the error says why."""
    for d in ("gt", "pred", "short"):
        (tmp_path / d).mkdir()
    for k in (1, 2):
        write_pts(tmp_path / "gt" / f"{k:06d}.pts", face())
        write_pts(tmp_path / "pred" / f"{k:06d}.PTS", face() + 1.0)
        write_pts(tmp_path / "short" / f"{k}.pts", face())
    done = crct("benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                "--out", tmp_path / "out")  # fmt: skip
    assert done.exit_code == 0, done.output
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["count"] == 2 and doc["missing"] == 0 and doc["jitter_pairs"] == 1
    line = assert_one_line_error(
        crct("benchmark", "--pred", tmp_path / "short", "--gt", tmp_path / "gt")
    )
    assert "written differently (1.pts against 000001.pts)" in line, line


def test_ci_runs_the_readme_commands() -> None:
    """.ci/run must install and test exactly as the README says (only the venv name differs)."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    install = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
    test = ".venv/bin/pytest -q"
    assert install in readme and f"\n{test}\n" in readme
    ci = (root / ".ci" / "run").read_text().replace("$VENV", ".venv")
    assert "set -euo pipefail" in ci
    assert f"\n{install}\n" in ci and f"\n{test}\n" in ci


@pytest.mark.parametrize("model", ["fll", "fv"])
def test_compression_reaches_the_trainer_and_its_recorded_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    """``crct train fll|fv --compression``: the share reaches the augmentation, and the
    command recorded in the manifest carries it."""
    import importlib

    trainer = importlib.import_module(f"crct_cli.train.{model}")
    seen = []
    monkeypatch.setattr(trainer, f"train_{model}", lambda cfg, log=None: seen.append(cfg))
    out = tmp_path / f"{model}.pt"
    result = crct("train", model, tmp_path, "--val", tmp_path, "--compression", "0.5", "--out", out)
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    assert cfg.augment.compression == 0.5 and "--compression 0.5" in cfg.command()


def test_shape_warp_reaches_the_trainer_and_a_bad_share_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``crct train fll --shape-warp``: the share reaches the augmentation and the recorded
    command; a share outside [0, 1] is refused before any training starts."""
    import crct_cli.train.fll as trainer

    seen = []
    monkeypatch.setattr(trainer, "train_fll", lambda cfg, log=None: seen.append(cfg))
    out = tmp_path / "fll.pt"
    result = crct("train", "fll", tmp_path, "--val", tmp_path, "--shape-warp", "0.5", "--out", out)
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    assert cfg.augment.shape_warp == 0.5 and "--shape-warp 0.5" in cfg.command()
    bad = crct("train", "fll", tmp_path, "--val", tmp_path, "--shape-warp", "1.5", "--out", out)
    assert bad.exit_code != 0 and len(seen) == 1 and "--shape-warp" in bad.output


def test_a_longer_smear_reaches_the_trainer_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``crct train fll --motion-blur-max``: the longest smear reaches the augmentation and the
    recorded command; its default is the augmentation's, so a command without it is unchanged."""
    from typer.main import get_command

    import crct_cli.train.fll as trainer
    from crct_cli.train.data import AugmentConfig

    command = get_command(app).commands["train"].commands["fll"]  # type: ignore[attr-defined]
    default = next(p.default for p in command.params if p.name == "motion_blur_max")
    assert default == AugmentConfig().motion_blur_len[1]
    seen = []
    monkeypatch.setattr(trainer, "train_fll", lambda cfg, log=None: seen.append(cfg))
    out = tmp_path / "fll.pt"
    for extra in ([], ["--motion-blur-max", "1.2"]):
        args = ["train", "fll", tmp_path, "--val", tmp_path, "--motion-blur", "0.5", *extra]
        result = crct(*args, "--out", out)
        assert result.exit_code == 0, result.output
    plain, longer = seen
    assert plain.augment.motion_blur_len == AugmentConfig().motion_blur_len
    assert "--motion-blur-max" not in plain.command()
    assert longer.augment.motion_blur_len == (AugmentConfig().motion_blur_len[0], 1.2)
    assert "--motion-blur 0.5 --motion-blur-max 1.2" in longer.command()


def test_benchmark_refuses_an_out_it_cannot_make_before_scoring(tmp_path: Path) -> None:
    """A file where --out or a folder above it goes: one line, no tables, nothing made."""
    for d in ("gt", "pred"):
        (tmp_path / d).mkdir()
        write_pts(tmp_path / d / "a.pts", face())
    (tmp_path / "notes.txt").write_text("a file")
    for out in (tmp_path / "notes.txt", tmp_path / "notes.txt" / "res"):
        result = crct(
            "benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out
        )
        line = assert_one_line_error(result)
        assert "notes.txt is a file, not a folder" in line and result.stdout == ""
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    for out in (tmp_path / "link", tmp_path / "link" / "res"):
        result = crct(
            "benchmark", "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--out", out
        )
        assert "link is a broken link" in assert_one_line_error(result) and result.stdout == ""
    fine = crct(
        "benchmark",
        "--pred",
        tmp_path / "pred",
        "--gt",
        tmp_path / "gt",
        "--out",
        tmp_path / "a" / "b",
    )
    assert fine.exit_code == 0 and (tmp_path / "a" / "b" / "results.json").is_file()


def test_focal_length_without_pose_is_said_to_change_nothing(tmp_path: Path, image: Path) -> None:
    result = crct("align", image, "--out", tmp_path / "o", "--focal-length", "800")
    assert (
        result.exit_code == 0 and "--focal-length changes nothing without --pose" in result.stderr
    )
    posed = crct("align", image, "--out", tmp_path / "p", "--focal-length", "800", "--pose")
    assert posed.exit_code == 0 and "changes nothing" not in posed.stderr


def test_training_data_of_the_checkout_is_found_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``../shared/data/...`` (crct train's defaults, the manifest's commands) from a folder
    without it: the checkout's, beside the package; other paths are taken as given."""
    import crct_cli.cli as cli

    afw = tmp_path / "shared" / "data" / "300w" / "afw"
    afw.mkdir(parents=True)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "repo" / "crct_cli" / "cli.py"))
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert cli._data_dir(Path("../shared/data/300w/afw")) == afw
    assert cli._data_dir(Path("../other/afw")) == Path("../other/afw")
    assert cli._data_dir(Path("../shared/data/300w/none")) == Path("../shared/data/300w/none")


def test_the_closing_table_says_which_counts_are_face_0_s_with_several_faces() -> None:
    from rich.console import Console

    from crct_cli.tracking.pipeline import TrackSummary
    from crct_cli.ui import print_track_summary

    def table(faces: int) -> str:
        console = Console(record=True, width=100)
        summary = TrackSummary("v.mp4", "o", 90, 71, 11, 0, 60, 2, 3.0, faces, 180)
        print_track_summary(console, summary, {})
        return console.export_text()

    several, one = table(2), table(1)
    assert "face 0 frames lost" in several and "re-detections, all faces" in several
    assert "face 0 with landmarks" in several
    assert "frames lost" in one and "face 0" not in one and "all faces" not in one


def test_crct_s_logged_warnings_read_as_the_command_s_own_lines(tmp_path: Path) -> None:
    """A corrupt packet skipped or a file cut short is logged by the reader (the Python API
    leaves logging to its caller); the command line says it as its other warnings,
    ``crct: warning: ...`` on one line."""
    import logging

    logger = logging.getLogger("crct_cli")
    before = (list(logger.handlers), logger.propagate)
    try:
        result = CliRunner().invoke(app, ["track", str(tmp_path / "none.mp4"), "--out", "x"])
        assert result.exit_code == 2
        script = (
            "import logging, sys\n"
            "from crct_cli.errors import warnings_as_lines\n"
            "warnings_as_lines(); warnings_as_lines()  # once, however often asked\n"
            "logging.getLogger('crct_cli.io.video').warning('%s: skipped %d corrupt packet(s)',"
            " 'a.avi', 1)\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert done.stderr == "crct: warning: a.avi: skipped 1 corrupt packet(s)\n"
        assert any(type(h).__name__ == "_WarningLine" for h in logger.handlers)
    finally:
        logger.handlers[:], logger.propagate = before
