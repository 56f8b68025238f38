"""What a new user meets first: the design card's own commands, every command line the README
shows, plots on a plain install, and tables that never cut a file name or a number."""

from __future__ import annotations

import io
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from crct_cli.bench.still_bench import NoiseSet, parse_noise
from crct_cli.cli import app
from crct_cli.io.images import read_image, write_image
from crct_cli.io.landmarks import write_pts
from crct_cli.noise import canonical_noise_type
from crct_cli.tables import never_cut, print_tables

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def crct(*args: object, **env: str):
    return CliRunner().invoke(app, [str(a) for a in args], env=env or None)


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------
# The design card: crct degrade --noise blur --level 3, crct benchmark --dataset 300vw-cat3


@pytest.fixture
def photo(tmp_path: Path, face_image) -> Path:
    path = tmp_path / "face.png"
    write_image(path, face_image(64, 48))
    return path


def test_degrade_takes_noise_as_the_card_writes_it(tmp_path: Path, photo: Path):
    result = crct("degrade", photo, "--out", tmp_path / "card", "--noise", "blur", "--level", "3")
    assert result.exit_code == 0, result.output
    card = (tmp_path / "card" / "face.png").read_bytes()
    assert read_image(tmp_path / "card" / "face.png").shape == read_image(photo).shape
    assert card != photo.read_bytes()  # blurred
    for alias in ("--type", "-t"):  # the old spelling still works, with the same result
        out = tmp_path / alias.strip("-")
        assert crct("degrade", photo, "--out", out, alias, "blur", "-l", "3").exit_code == 0
        assert (out / "face.png").read_bytes() == card
    assert "--noise" in crct("degrade", "--help", COLUMNS="200").stdout


@pytest.mark.parametrize("alias", ["color", "colour", "Color"])
def test_color_is_another_name_for_scale(tmp_path: Path, photo: Path, alias: str):
    scale = tmp_path / "scale"
    assert crct("degrade", photo, "--out", scale, "--noise", "scale", "--level", "2").exit_code == 0
    result = crct("degrade", photo, "--out", tmp_path / "c", "--noise", alias, "--level", "2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c" / "face.png").read_bytes() == (scale / "face.png").read_bytes()
    assert canonical_noise_type(alias) == "scale"
    assert parse_noise(f"{alias}-2") == [NoiseSet("scale", 2)]  # crct benchmark --noise


def test_degrade_without_a_type_names_the_option(tmp_path: Path, photo: Path):
    line = one_line_error(crct("degrade", photo, "--out", tmp_path / "o", "--level", "2"))
    assert "--noise and --level" in line
    line = one_line_error(
        crct("degrade", photo, "--out", tmp_path / "o", "--noise", "fog", "-l", "1")
    )
    assert "fog" in line and "color" in line


def test_benchmark_300vw_cat3_without_the_data_says_where_to_put_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("CRCT_DATA", raising=False)
    line = one_line_error(crct("benchmark", "--dataset", "300vw-cat3"))
    assert "CRCT_DATA" in line and "300VW" in line
    monkeypatch.setenv("CRCT_DATA", str(tmp_path))
    line = one_line_error(crct("benchmark", "--dataset", "300vw-cat3", "--out", tmp_path / "b"))
    assert str(tmp_path / "300VW") in line and "ibug" in line
    assert not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------
# Every command line the README shows is accepted by the parser


def readme_commands() -> list[list[str]]:
    """The argument lists of every ``crct`` (or ``.venv/bin/crct``) call in README's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    commands = []
    for line in (ln for block in blocks for ln in block.splitlines()):
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            part, words = words[:cut], words[cut + 1 :]
            if part and Path(part[0]).name == "crct":
                commands.append(part[1:])
    return commands


#: Click's exception base, through Typer's public API: a fresh install of Typer may vendor
#: Click rather than depend on it, so ``import click`` is not available everywhere.
CLICK_EXCEPTION: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def parse(args: list[str]) -> Any:
    """Parse and convert every argument as ``crct`` would, without running the command."""
    command: Any = typer.main.get_command(app)
    name = "crct"
    while hasattr(command, "commands"):  # a group
        name, *args = args
        command = command.commands[name]
    return command.make_context(name, list(args))


def test_the_readme_shows_the_card_commands():
    shown = [" ".join(c) for c in readme_commands()]
    assert len(shown) > 30
    assert any(c.startswith("degrade") and "--noise blur --level 3" in c for c in shown)
    assert any(c.startswith("benchmark --dataset 300vw-cat3") for c in shown)
    assert any(c.startswith("track") and "--out" in c for c in shown)


@pytest.mark.parametrize("args", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_line_parses(args: list[str]):
    try:
        parse(args)
    except CLICK_EXCEPTION as exc:
        pytest.fail(f"crct {shlex.join(args)}: {exc.format_message()}")  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Plots on a plain install


def test_matplotlib_is_a_default_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(re.match(r"matplotlib\b", d) for d in project["dependencies"])
    assert "plot" in project["optional-dependencies"]  # `pip install crct[plot]` still works


# ---------------------------------------------------------------------------------------------
# Tables never cut a file name or a number


LONG = "a-folder-whose-name-is-long-enough/" * 5 + "the-face-image-0123456789.png"
NUMBER = "0.123456789012"


def cells_by_column(text: str, column: int) -> str:
    """Join one column's cell text over the rows of a rendered box table (folded cells)."""
    rows = [ln.split("│")[1:-1] for ln in text.splitlines() if ln.startswith("│")]
    return "".join(r[column].strip() for r in rows if len(r) > column)


def a_table() -> Table:
    table = Table(title="results")
    table.add_column("file")
    table.add_column("NME", justify="right", no_wrap=True)
    table.add_row(LONG, NUMBER)
    return table


def test_a_narrow_terminal_folds_paths_and_numbers_instead_of_cutting():
    screen = io.StringIO()
    console = Console(file=screen, width=30, force_terminal=True, color_system=None)
    print_tables([a_table()], console)
    text = screen.getvalue()
    assert "…" not in text and max(len(ln) for ln in text.splitlines()) <= 30
    assert cells_by_column(text, 0) == LONG.replace(" ", "")
    assert cells_by_column(text, 1) == NUMBER


def test_redirected_output_prints_each_row_whole(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "40")
    screen = io.StringIO()
    console = Console(file=screen, color_system=None)  # not a terminal: a file, a pipe, a test
    assert console.width == 40
    title = "overall: " + LONG + " vs " + LONG
    table = a_table()
    table.title = title
    print_tables([table], console)
    text = screen.getvalue()
    assert title in text  # the title, naming folders, is not wrapped either
    assert any(LONG in ln and NUMBER in ln for ln in text.splitlines())


def test_never_cut_sets_every_column_to_fold():
    table = never_cut(a_table())
    assert all(c.overflow == "fold" and not c.no_wrap for c in table.columns)


def test_benchmark_pred_gt_table_keeps_long_file_names(tmp_path: Path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    rel = Path(*LONG.split("/")).with_suffix(".pts")
    points = np.stack([np.arange(68.0), np.arange(68.0) * 0.5 + 3], axis=1)
    for folder in (pred, gt):
        (folder / rel).parent.mkdir(parents=True)
    write_pts(gt / rel, points)
    write_pts(pred / rel, points + 0.5)
    result = crct("benchmark", "--pred", pred, "--gt", gt, COLUMNS="40")
    assert result.exit_code == 0, result.output
    assert rel.as_posix() in result.stdout
    assert f"overall: {pred} vs {gt}" in result.stdout


def test_an_empty_argument_is_refused_before_it_becomes_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``--out "$DIR"`` with DIR unset: Path("") is ".", so the run would land among the
    inputs; every command refuses an empty argument, in either spelling, and writes nothing."""
    monkeypatch.chdir(tmp_path)
    sample = Path(__file__).resolve().parents[1] / "samples" / "astronaut.mp4"
    for args, said in (
        (["track", sample, "--out", ""], "an empty argument after '--out'"),
        (["track", sample, "--out="], "--out has an empty value"),
        (["align", " ", "--out", "x"], "an empty argument after 'align'"),
        (["degrade", sample, "--noise", "blur", "--out", ""], "an empty argument after '--out'"),
    ):
        assert said in one_line_error(crct(*args))
    assert list(tmp_path.iterdir()) == []
    # an empty Ray address means none given ($RAY_ADDRESS, else a local one); help is help
    ray = one_line_error(crct("track", tmp_path / "no.mp4", "--out", "o", "--ray-address", ""))
    assert "an empty argument" not in ray and "--ray-address is for --engine ray" in ray
    shown = crct("track", "", "--help")
    assert shown.exit_code == 0 and "Usage: crct track" in shown.stdout


def test_the_calibration_script_docs_name_says_what_it_wants_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m crct_cli.train.calibrate`` (docs/models.md): usage without a folder, one
    error line for a folder without faces, never a traceback."""
    from crct_cli.train.calibrate import USAGE, main

    assert main([]) == 2 and capsys.readouterr().err.strip() == USAGE
    assert main(["--help"]) == 0 and capsys.readouterr().out.strip() == USAGE
    assert main([str(tmp_path / "none")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"crct: error: {tmp_path / 'none'}: no such data folder"
    )


def test_tab_completion_offers_the_python_api() -> None:
    import crct_cli

    names = dir(crct_cli)
    assert {"Tracker", "track_videos", "load_track", "Face", "TrackedFrame"} <= set(names)
    assert all(hasattr(crct_cli, n) for n in crct_cli.__all__)
