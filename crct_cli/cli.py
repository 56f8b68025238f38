"""The ``crct`` command line. Typer only: parse the arguments, call a module, print the result.

Every error meant for the user (:class:`CrctError`, a usage error, an OS error while writing)
ends as ONE line ``crct: error: ...`` on stderr with exit code 2 and no traceback; Ctrl-C exits
with 130. That handling lives in :class:`CrctGroup`, so every subcommand gets it.
"""

import contextlib
import dataclasses
import inspect
import math
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from crct_cli import __version__
from crct_cli.errors import (
    CrctError,
    OptionError,
    error_text,
    missing_dependency,
    warnings_as_lines,
)
from crct_cli.io.atomic import make_output_folder

try:
    import typer
    from typer.core import TyperGroup
except ModuleNotFoundError as _missing:  # crct installed with --no-deps: one line, no traceback
    if missing_dependency(_missing) is None:
        raise
    sys.stderr.write(f"crct: error: {missing_dependency(_missing)}\n")
    raise SystemExit(2) from None

if TYPE_CHECKING:
    from crct_cli.tracking.pipeline import FrameRange

#: Click's base exception, found through Typer's public ``BadParameter`` so this works with both
#: the vendored and the standalone Click.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

EXIT_BAD_INPUT = 2
#: ``crct benchmark --speed --pairs``: alternating whole runs of dlib and crct track.
SPEED_PAIRS = 3
EXIT_INTERRUPTED = 130


def _error_line(message: str) -> None:
    """Print ``crct: error: message`` as a single line on stderr."""
    typer.echo(f"crct: error: {' '.join(str(message).split())}", err=True)


def _warning_line(message: str) -> None:
    """Print ``crct: warning: message`` as a single line on stderr."""
    typer.echo(f"crct: warning: {' '.join(str(message).split())}", err=True)


def _click_message(exc: Exception) -> str:
    """Click's message of ``exc``; ``str(exc)`` for an exception that is not Click's."""
    return str(getattr(exc, "format_message", lambda: str(exc))())


def _usage_message(exc: Exception, argv: list[str] | None = None) -> str:
    message = _click_message(exc)
    ctx = getattr(exc, "ctx", None)
    after = _options_after_dashes(argv or [])
    if after:  # ``crct track -- -a.mp4 --out X``: ``--`` makes every later word a file name
        message += (
            f" ({after} comes after '--', which makes every later word a file name:"
            " put options before '--')"
        )
    elif ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _options_after_dashes(argv: list[str]) -> str | None:
    """The first word after ``--`` that is spelt like a long option, or None."""
    if "--" not in argv:
        return None
    words = argv[argv.index("--") + 1 :]
    return next((repr(w.partition("=")[0]) for w in words if re.match(r"--[a-z]", w)), None)


def reflow_help(text: str) -> str:
    """A command's docstring with each paragraph's lines joined.

    Typer's rich help keeps a docstring's line breaks, so a terminal narrower than the source
    breaks each line again and leaves ragged fragments; joined, the terminal wraps once.
    Paragraphs that start with ``\\b`` (Click's "keep as is") and anything after ``\\f`` stay.
    """
    help_text, cut, rest = inspect.cleandoc(text).partition("\f")
    paragraphs = [p if p.startswith("\b") else " ".join(p.split()) for p in help_text.split("\n\n")]
    return "\n\n".join(paragraphs) + cut + rest


#: the narrowest terminal for Typer's help panels: below it their option columns leave the
#: help text a few words a line (at 80 columns, 19 letters: `crct track --help` ran to 701
#: lines against click's plain help's 293), and click's plain help (each name whole, its help
#: wrapped below or beside it) reads better
PANEL_HELP_COLUMNS = 120


def _help_that_fits(group: TyperGroup) -> None:
    """Help panels whose option names are never cut, or plain help on a narrow terminal."""
    from rich.console import Console

    width = Console().width  # what Typer's console will measure (COLUMNS, else the terminal)
    if width >= PANEL_HELP_COLUMNS:
        _keep_option_names_whole()
        return
    # click would not go under 50 columns, and a narrow terminal would wrap every long line
    group.context_settings = {**group.context_settings, "terminal_width": max(width - 2, 30)}
    narrow = _narrow_context(group.context_class)
    stack: list[Any] = [group]
    while stack:
        command = stack.pop()
        command.rich_markup_mode = None
        command.context_class = narrow
        stack.extend(getattr(command, "commands", {}).values())


#: click's plain help gives option names a column of up to 30 (at 40 columns, 8 left for
#: their help); below PANEL_HELP_COLUMNS it is at most a quarter of the width, and a longer
#: name has its help on the lines below it, as wide as the name column allows
NARROW_NAME_SHARE = 4


def _narrow_context(context_class: Any) -> Any:
    """A click context whose help formatter keeps the name column to a share of the width."""

    class NarrowFormatter(context_class.formatter_class):
        def write_dl(self, rows: Any, col_max: int = 30, col_spacing: int = 2) -> None:
            column = min(col_max, max(8, self.width // NARROW_NAME_SHARE))
            with _lines_not_broken_at_hyphens():
                super().write_dl(rows, column, col_spacing)

    class NarrowContext(context_class):
        formatter_class = NarrowFormatter

    return NarrowContext


@contextlib.contextmanager
def _lines_not_broken_at_hyphens() -> Iterator[None]:
    """click wraps help at hyphens, so "--no-shot-cuts" could end a line as "--no-" (not a
    flag one can type); its wrapper here breaks at spaces only. Typer's own copy of click is
    patched while the options are written; another click is left as it is."""
    try:
        from typer._click import _textwrap as module
    except ImportError:
        yield
        return
    wrapper = module.TextWrapper

    class AtSpaces(wrapper):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "break_on_hyphens": False})

    module.TextWrapper = AtSpaces  # type: ignore[misc]
    try:
        yield
    finally:
        module.TextWrapper = wrapper  # type: ignore[misc]


def _keep_option_names_whole() -> None:
    """Typer's help tables cut a long option name to fit the terminal ("--no-relaxed-redete…"
    at 80 columns); keep names and metavars whole, so every one can be read and typed, and
    let the help column wrap narrower instead (a word wider than it breaks rather than being
    cut). Only when help is shown (rich loads then)."""
    from rich.console import Group
    from rich.table import Table
    from typer import rich_utils

    if getattr(rich_utils.Table, "keeps_names_whole", False):
        return

    class NamesWholeTable(Table):
        keeps_names_whole = True

        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            super().add_row(*renderables, **kwargs)
            for column in self.columns:
                column.overflow = "fold"  # a word wider than its column breaks, never vanishes
            for column in self.columns[:-1]:  # the last is the help text
                column.no_wrap = True

    rich_utils.Table = NamesWholeTable  # type: ignore[misc]

    # an option's help and its [default: ...] one under the other: as Typer's Columns they
    # would form a table of their own, which cuts a long word again
    def stacked(items: Any) -> Group:
        return Group(*items)

    rich_utils.Columns = stacked  # type: ignore[misc,assignment]  # a function for its class


class CrctGroup(TyperGroup):
    """Turns bad input into one line and an exit code instead of a panel or a traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            if command.help:
                command.help = reflow_help(command.help)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Plain help (a narrow terminal) lists each command with its description wrapped:
        click would cut it to the width left ("Draw...")."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:  # as the panels: its first paragraph
                first = (command.short_help or command.help or "").split("\n\n")[0]
                rows.append((name, " ".join(first.split())))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: Any) -> Any:
        from crct_cli.signals import sigterm_as_interrupt

        try:
            with sigterm_as_interrupt(final=True):  # timeout, SLURM, docker stop: as Ctrl-C
                return super().invoke(ctx)
        except CrctError as exc:  # an option's bad value named by its flag, not its keyword
            _error_line(error_text(exc, flags=True))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            typer.echo("crct: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            raise  # the reader went away (``crct ... | head``): Typer exits quietly
        except ModuleNotFoundError as exc:  # a required package missing, met as a command runs
            line = missing_dependency(exc)
            if line is None:
                raise
            _error_line(line)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _error_line(f"{where}{exc.strerror or exc}")
            raise typer.Exit(EXIT_BAD_INPUT) from None

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = sys.argv[1:] if args is None else [str(a) for a in args]
        empty = _empty_argument(argv)
        if empty is not None:  # a path of "" is the current folder to Path: never meant
            _error_line(empty)
            if not standalone_mode:
                return EXIT_BAD_INPUT
            sys.exit(EXIT_BAD_INPUT)
        groups = [name for name, command in self.commands.items() if hasattr(command, "commands")]
        if not argv or "--help" in argv or "-h" in argv or argv in ([g] for g in groups):
            _help_that_fits(self)  # (``crct`` and ``crct train`` alone show their help)
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except _ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # plain ``crct``: its help
                if self.rich_markup_mode is None:  # click's plain help (a narrow terminal)
                    typer.echo(_click_message(exc))
                code = 0  # (Typer's panels show it themselves)
            else:
                _error_line(_usage_message(exc, argv))
                code = getattr(exc, "exit_code", EXIT_BAD_INPUT)
        except typer.Abort:
            typer.echo("crct: aborted", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


#: options whose empty value means "not given" (Ray's address: $RAY_ADDRESS, else a local one)
EMPTY_MEANS_UNSET = frozenset({"--ray-address"})


def _empty_argument(argv: list[str]) -> str | None:
    """What is wrong with an empty argument (``--out "$DIR"`` with ``DIR`` unset), or None:
    Path("") is the current folder, so ``crct track a.mp4 --out ""`` would write there."""
    if "--help" in argv or "-h" in argv:
        return None  # help is shown whatever else was typed
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag in EMPTY_MEANS_UNSET or (i > 0 and argv[i - 1] in EMPTY_MEANS_UNSET):
            continue
        if arg.strip() == "" or (arg.startswith("--") and eq and value.strip() == ""):
            after = f"after {argv[i - 1]!r} " if arg.strip() == "" and i else ""
            name = f"{flag} has an empty value" if eq else f"an empty argument {after}".rstrip()
            return f"{name} (an unset shell variable?)"
    return None


app = typer.Typer(
    cls=CrctGroup,
    name="crct",
    help="Robust 68-point facial landmark tracking in video (CRCT tracker, FADeNN aligner).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crct {__version__}")
        raise typer.Exit()


def _weights_path(value: bool) -> None:
    if value:
        from crct_cli.models.weights import WEIGHTS_DIR, check_weights_folder

        try:  # an eager option runs before the command's own error handling
            check_weights_folder(WEIGHTS_DIR)
        except CrctError as exc:
            _error_line(str(exc))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        typer.echo(str(WEIGHTS_DIR.absolute()))
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    weights_path: Annotated[
        bool,
        typer.Option(
            "--weights-path",
            callback=_weights_path,
            is_eager=True,
            help="Show the folder crct reads its weights from ($CRCT_WEIGHTS, else the "
            "checkout's weights/, else the installed copy) and exit: copy it to train your own.",
        ),
    ] = False,
) -> None:
    """Robust 68-point facial landmark tracking in video (CRCT tracker, FADeNN aligner)."""
    from crct_cli.runtime.backend import share_threads

    warnings_as_lines()
    if ctx.invoked_subcommand != "train":  # training runs ONNX Runtime's own tools (int8)
        share_threads()  # the process is crct's: its ONNX Runtime sessions may share one pool


#: Panels of the longer --help screens: the options most runs need stay under "Options".
_PANEL_FACES = "Several faces"
_PANEL_NETS = "Networks and speed"
_PANEL_ALG = "Algorithm 1 (the paper's TB, TC, SeqBT) and what crct adds to it"
_PANEL_FILE = "Whole video files: noisy footage, looking ahead, smoothing"
_PANEL_MANY = "Many videos: workers, Ray"
_PANEL_DATASETS = "Datasets (--dataset)"
_PANEL_SPEED = "Speed (--speed)"
_PANEL_AS_TRACK = "Video methods: crct track's options, the same defaults"

#: Options several commands share, declared once.
DeviceOption = Annotated[
    str,
    typer.Option(help="auto, cpu or cuda.", metavar="auto|cpu|cuda", rich_help_panel=_PANEL_NETS),
]
BackendOption = Annotated[
    str,
    typer.Option(
        rich_help_panel=_PANEL_NETS,
        help="How the networks run: auto (ONNX Runtime on the CPU, PyTorch on CUDA), "
        "torch or onnx.",
        metavar="auto|torch|onnx",
    ),
]
DenoiseOption = Annotated[
    str,
    typer.Option(
        rich_help_panel=_PANEL_NETS,
        help="FADeNN: clean the crop FLL sees with the internal denoiser d (one DAE), "
        "s (classifier + a DAE per noise type) or m (multi-task classifier + DAEs), using "
        "weights/fadenn_<v>.pt (denoiser and FLL fine-tuned together); none: plain FLL.",
        metavar="none|d|s|m",
    ),
]
FacesOption = Annotated[
    str,
    typer.Option(
        help="How many faces to follow: 1 (the papers' single target), a number, or all.",
        metavar="N|all",
    ),
]
ModeOption = Annotated[
    str,
    typer.Option(
        help="crct (BT + FV + FLL), fll-mt (MTCNN every frame + FLL) or bt (BT alone).",
        metavar="crct|fll-mt|bt",
    ),
]
PoseOption = Annotated[
    bool,
    typer.Option(
        help="Also write each face's head pose from its points (a rigid 3D face fitted to "
        "them): OpenFace's pose_Tx/Ty/Tz (mm) and pose_Rx/Ry/Rz (radians: pitch, yaw, "
        "roll) in landmarks.csv, pose in track.json.",
    ),
]
PtsOriginOption = Annotated[
    int,
    typer.Option(
        help="The coordinate the .pts files written give the first pixel's centre: 0 (crct's, "
        "as OpenCV, dlib and OpenFace count) or 1 (300-W's and 300-VW's own files, which "
        "menpo's importer and eos read: 1 is added to every x and y). Only the .pts files "
        "change (the crops' too); the other outputs keep 0.",
        metavar="0|1",
    ),
]
FocalLengthOption = Annotated[
    float | None,
    typer.Option(
        help="With --pose: the camera's focal length in pixels (default: 500 at 640x480, "
        "scaled with the frame, a webcam's guess). It sets the distance, and the angle at "
        "which a face off the frame's middle is seen.",
        metavar="PX",
        show_default=False,
    ),
]
RotateOption = Annotated[
    str,
    typer.Option(
        help="Turn every frame this many degrees clockwise before tracking, for video "
        "lying on its side with no tag that says so (a phone's tag is applied already); "
        "auto: the quarter turn in which the first frames that show a face (up to 20 s in) "
        "show it most surely. Points, overlay and crops are in the turned frames' pixels.",
        metavar="0|90|180|270|auto",
    ),
]


MinFaceOption = Annotated[
    str,
    typer.Option(
        help="The smallest face to look for: pixels (MTCNN's own default, 20), or a share of "
        "each frame's or photo's shorter side, as 5% (one setting for pictures of every size). "
        "Larger: faster detection on large frames (HD video, big photos), and smaller faces (a "
        "crowd behind the speaker) left unfound.",
        metavar="PX|N%",
        rich_help_panel=_PANEL_NETS,
    ),
]


def _parse_box(text: str | None) -> Any:
    if text is None:
        return None
    from crct_cli.tracking.tracker import check_init_box

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise CrctError(f"--init-box must be X,Y,W,H in pixels, got {text!r}") from None
    return check_init_box(values)


@app.command()
def track(
    videos: Annotated[
        list[Path],
        typer.Argument(
            help="Videos and folders to track (folders: every video under them, recursively; "
            "a folder of images with no video in it or below it is one image sequence).",
            metavar="VIDEO|FOLDER...",
            show_default=False,
            readable=False,  # crct says why a video cannot be read, and tracks the others
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output folder: one video alone writes here; several write to OUT/<name>/, "
            "a folder's FOLDER/sub/a.mp4 to OUT/sub/a/, with OUT/summary.csv.",
            metavar="DIR",
            show_default=False,
        ),
    ],
    overlay: Annotated[
        bool, typer.Option(help="Also write overlay.mp4: each face in its colour, with its id.")
    ] = False,
    crops: Annotated[
        int,
        typer.Option(
            help="Also write each face cut out, eyes level, SIZE px square: crops/000001.png "
            "with its points in crop pixels, crops/000001.pts (faces/<id>/crops/ with several "
            "faces), for models that read aligned faces. 0: none.",
            metavar="SIZE",
        ),
    ] = 0,
    pts: Annotated[
        bool,
        typer.Option(
            help="Write annot/000001.pts... (300-VW layout), a file a frame. --no-pts: "
            "landmarks.csv and track.json alone hold the points (two files a video instead of "
            "one a frame, for archives; crct_cli.load_track reads them).",
        ),
    ] = True,
    csv_style: Annotated[
        str,
        typer.Option(
            help="landmarks.csv's layout: crct (plain commas, a row per face with points) or "
            "openface (FeatureExtraction's own: ', ' between values, the pose before x_0, a row "
            "for every frame, zeros and success 0 where no face has points), for scripts "
            "written for OpenFace's CSV.",
            metavar="crct|openface",
        ),
    ] = "crct",
    pts_origin: PtsOriginOption = 0,
    pose: PoseOption = False,
    focal_length: FocalLengthOption = None,
    faces: FacesOption = "1",
    detect_every: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_FACES,
            help="With several faces: look for new faces with MTCNN every K frames "
            "(and on each of a lost face's first 10 lost frames, then on every third frame "
            "while it stays lost).",
            metavar="K",
        ),
    ] = 10,
    max_lost: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_FACES,
            help="With several faces: end a face's track after more than this many lost frames "
            "in a row (a face that comes back later gets a new id).",
            metavar="FRAMES",
        ),
    ] = 40,
    mode: ModeOption = "crct",
    init_box: Annotated[
        str | None,
        typer.Option(help="Start from this box (pixels) instead of detecting.", metavar="X,Y,W,H"),
    ] = None,
    tb: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="TB: re-detection gate of eq. 8 (a detection's distance over the box's size).",
            metavar="TB",
        ),
    ] = 1.0,
    tc: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_ALG, help="TC: face-validator threshold (p(face)).", metavar="TC"
        ),
    ] = 0.5,
    seq_bt: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_ALG, help="SeqBT: frames between LSTM resets.", metavar="FRAMES"
        ),
    ] = 2,
    denoise: DenoiseOption = "none",
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
    int8: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_NETS,
            help="On the CPU (ONNX Runtime): run BT and FLL's first stage on int8 graphs "
            "(a frame's networks about 1.3x faster); the points written still come from "
            "FLL's float32 second stage. --no-int8: float32 throughout.",
        ),
    ] = True,
    relaxed_redetect: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="When a lost face is not found again (or at once, --redetect-on-loss), look "
            "once more with MTCNN's more sensitive thresholds (blurred, noisy or dark "
            "footage); eq. 8 and FV still guard the result. --no-relaxed-redetect: the "
            "paper's re-detection alone.",
        ),
    ] = True,
    stretched_look: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="When that more sensitive look finds nothing, look at the frame once more "
            "with each colour channel stretched to the full range (a washed-out or "
            "colour-cast face); eq. 8 and FV still guard the result.",
        ),
    ] = False,
    reacquire: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="One face: once lost this many frames (each valid frame between takes one "
            "off), take the detection nearest the held box wherever it is (eq. 8's gate "
            "opens); 0: never, as in the paper.",
            metavar="FRAMES",
        ),
    ] = 25,
    redetect_fallback: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="When the face validator rejects BT's estimate from a fresh detection, try "
            "FLL in the detection box itself (kept if the validator accepts it).",
        ),
    ] = True,
    check_refined: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="The face validator also checks FLL's refined points, and below --tc the "
            "frame is lost after all; --no-check-refined: the paper's one look, at BT's.",
        ),
    ] = True,
    redetect_on_loss: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="When the face validator rejects BT's estimate on a frame after a valid one, "
            "look for the face in that frame at once (FLL in the detection, kept if the "
            "validator accepts it); --no-redetect-on-loss: from the next frame, as the paper.",
        ),
    ] = True,
    lost_points: Annotated[
        str,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="The points written for a lost frame: fll (FLL in the last box the validator "
            "accepted, where a face that is only hard to see still is) or bt (BT's rejected "
            "estimate, as in the paper). The frame is marked lost either way.",
            metavar="fll|bt",
        ),
    ] = "fll",
    lost_follow: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="From a lost run's second frame, FLL also reads where the last lost frame's "
            "points were, and the validator's score picks that or the held box's answer: a "
            "face moving on under a shadow is followed. The held box stays where it was.",
        ),
    ] = True,
    lost_flip: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="On a frame where the validator rejects BT's estimate, FLL also reads the "
            "face mirrored and averages (as --flip does on every frame): steadier points where "
            "the face is hard to see, one more FLL pass on those frames only.",
        ),
    ] = True,
    lost_doubted: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="When the look for a face the moment it is lost finds one that the validator "
            "turns down, FLL's points there may still be the lost frame's: the validator's "
            "score picks them or the held box's answer. The frame stays lost.",
        ),
    ] = True,
    gate_growth: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="One face: eq. 8's gate (--tb) widens by this much for each frame the face "
            "has been lost, so that a face lost in a fast move is taken back where it went; "
            "0: the paper's fixed gate.",
            metavar="GATE",
        ),
    ] = 0.2,
    likeness: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="A face re-found near where the one followed was lost must look like it: "
            "the correlation of their small eye-levelled grey thumbnails at least this, or it "
            "is taken for a neighbour and turned down (0.25 was tried); 0: no check.",
            metavar="R",
        ),
    ] = 0.0,
    find: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="When a lost face is looked for, the face finder (weights/finder.pt) looks "
            "around the box it was last seen in, beside MTCNN: a face smeared by a fast move, "
            "turned or half out of the frame; of two different faces found, the nearer is "
            "taken; eq. 8 and FV still guard the result. --no-find: MTCNN alone.",
        ),
    ] = True,
    find_wide: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="Where the face finder's window holds no face, it looks again at a window "
            "this many times as wide, at the same scale: a face that went further in a fast "
            "burst (1.25-4); 0: no second look.",
            metavar="TIMES",
        ),
    ] = 2.0,
    backfill: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="When a video opens on frames where no face can be detected (dark, covered), "
            "up to this many of them wait for the first face and get FLL's points in its "
            "first box, marked lost; 0: they stay without a face, as in the paper.",
            metavar="FRAMES",
        ),
    ] = 50,
    blend: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_NETS,
            help="Write the mean of FLL's two stages, as crct align does (no extra cost, "
            "steadier and more accurate points); --no-blend: the second stage's alone.",
        ),
    ] = True,
    flip: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_NETS,
            help="FLL also reads each face mirrored and averages, as crct align does: "
            "steadier points, FLL twice the cost (about 1.6x the time per frame).",
        ),
    ] = False,
    video_fll: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_NETS,
            help="FLL's first stage is the one trained on motion-smeared faces too "
            "(weights/fll_video.pt): a face that moves fast smears in video. "
            "--no-video-fll: fll.pt, crct align's still-image first stage.",
        ),
    ] = True,
    bt_reuse: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_NETS,
            help="When a face's box moved less than this share of its side since the last "
            "frame, BT cuts both frames at the last frame's box and reuses that crop's "
            "features: half of BT's work on most frames of real video; 0: never (the "
            "paper's crops).",
            metavar="SHARE",
        ),
    ] = 0.05,
    smooth: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="Smooth each face's shape over the frames its track follows: steadier "
            "points. With --lookahead (the default for files) over the frames on both sides "
            "(see there); without it, a One Euro filter on the points with the head's pose "
            "taken out, so a fast head is never delayed. --no-smooth: each frame's points as "
            "FLL gave them.",
        ),
    ] = True,
    smooth_cutoff: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="--smooth: the filter's cutoff for a still face; lower is steadier.",
            metavar="HZ",
        ),
    ] = 2.5,
    smooth_beta: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="--smooth: how much faster points (a mouth opening) raise their cutoff; "
            "higher follows fast expressions more closely.",
            metavar="BETA",
        ),
    ] = 5.0,
    lookahead: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="Read on in the video past each frame (a file, not a live stream): --smooth "
            "averages each face's shape and pose over the frames on both sides where they "
            "differ by no more than the localiser's noise (a third of a second each way, no "
            "lag; --smooth-cutoff and --smooth-beta then unused), and --backtrack follows a "
            "re-found face back into the frames it was lost in. --no-lookahead: neither, the "
            "causal filter of a live stream.",
        ),
    ] = True,
    backtrack: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="--lookahead: when a lost face is found again, follow it backwards (Algorithm "
            "1 run back in time from the re-found face) into up to this many of the frames it "
            "was lost in; those the validator accepts get its points, state tracked. 0: never.",
            metavar="FRAMES",
        ),
    ] = 10,
    bridge_lost: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="--lookahead: once a lost face is followed again, give each frame of its lost "
            "run (up to 75 frames, 3 s at 25 fps, and 200 MB) the shape between the frames "
            "around the run, where the run's own points put the face (along an axis they are "
            "squeezed in, nearer the shape's own place): for faces FLL finds but reads poorly "
            "(a dark band across them). --no-bridge-lost: lost frames keep FLL's points.",
        ),
    ] = True,
    temporal_denoise: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="On footage noisy throughout (a dim webcam, a dark room: each frame's noise at "
            "least --noise-threshold for a second), average each pixel with the same pixel of "
            "the frames around it "
            "(with --lookahead, on both sides) where they agree up to that noise: the noise goes, "
            "a moving edge stays. Cleaner video passes untouched. The overlay shows the frames "
            "as the networks saw them. --no-temporal-denoise: every frame as decoded.",
        ),
    ] = True,
    temporal_radius: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="--temporal-denoise: frames averaged on each side (before, without "
            "--lookahead); 0: off.",
            metavar="FRAMES",
        ),
    ] = 2,
    temporal_strength: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="--temporal-denoise: how far frames may differ, in units of their noise, and "
            "still be averaged; higher removes more noise and smears more motion.",
            metavar="S",
        ),
    ] = 0.8,
    noise_threshold: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_FILE,
            help="--temporal-denoise: the noise (standard deviation, grey levels of 255) from "
            "which frames are filtered; clean video measures under 2.",
            metavar="GREY",
        ),
    ] = 2.5,
    shot_cuts: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="Look for shot cuts (a frame unlike the one before in both layout and "
            "colours: an edited interview's reverse shot): every track ends there and faces "
            "are found afresh, so a face of the new shot gets a new id (with --faces 1, face 0 "
            "takes the face found nearest where it was, however far), and nothing smooths, "
            "looks back or "
            "backfills across it. track.json marks the frame. --no-shot-cuts: one shot.",
        ),
    ] = True,
    cut_correlation: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="--shot-cuts: a cut's small grey picture correlates (block by block, each "
            "block allowed to move a little; the median) below this with the frame before.",
            metavar="R",
        ),
    ] = 0.9,
    cut_histogram: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_ALG,
            help="--shot-cuts: and its colours (hue and saturation, or grey levels) lie at "
            "least this far from the frame before's (Bhattacharyya distance, 0 to 1); higher "
            "finds fewer cuts.",
            metavar="D",
        ),
    ] = 0.45,
    sequence_fps: Annotated[
        float,
        typer.Option(
            help="Image sequences (a folder of frames, in the natural order of their names): "
            "frames a second, for the times written and the seconds the smoothing counts in "
            "(a video file has its own).",
            metavar="FPS",
        ),
    ] = 30.0,
    rotate: RotateOption = "0",
    min_face: MinFaceOption = "20",
    max_frames: Annotated[
        int | None,
        typer.Option(
            help="Track only the first N frames of each video (a quick look at settings "
            "before a long run; the frames keep their numbers, and the last third of a "
            "second may differ a little from a whole run's: --lookahead reads on). A later "
            "run without it tracks the whole video again.",
            metavar="N",
            show_default=False,
        ),
    ] = None,
    skip_frames: Annotated[
        int,
        typer.Option(
            help="Pass over the first N frames of each video (not tracked; MP4, MOV, MKV "
            "and WebM files are sought to frame N, others decoded through; with "
            "--max-frames, a stretch from the middle): the frames after keep their numbers, "
            "annot/000301.pts after --skip-frames 300. The face is found and followed from "
            "the stretch's first frame, so points differ a little from a whole run's.",
            metavar="N",
        ),
    ] = 0,
    workers: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=_PANEL_MANY,
            help="Videos tracked at once, each worker a process that loads the networks once "
            "(default: one per core, as memory allows; with --engine ray, one per --threads "
            "CPUs of the cluster).",
            metavar="N",
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=_PANEL_NETS,
            help="Threads of each worker's networks (default: the cores / --workers; "
            "with --engine ray, 1).",
            metavar="T",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Track every video again, even those whose outputs an earlier run completed "
            "with the same settings (skipped otherwise).",
        ),
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            rich_help_panel=_PANEL_MANY,
            help="local (worker processes on this machine) or ray (Ray tasks, on a cluster: "
            "OUT must be storage every node sees; pip install 'crct\\[ray]').",
            metavar="local|ray",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=_PANEL_MANY,
            help="The Ray cluster to use, as `ray start --head` prints it (default: "
            "$RAY_ADDRESS, else a fresh local Ray instance).",
            metavar="ADDR",
            show_default=False,
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float,
        typer.Option(
            rich_help_panel=_PANEL_MANY,
            help="With --engine ray: GPUs each worker reserves (e.g. 0.25 puts four on a GPU; "
            "use with --device cuda).",
            metavar="G",
        ),
    ] = 0.0,
) -> None:
    """Track 68 landmarks through videos: DIR/annot/000001.pts..., landmarks.csv, track.json.

    A re-run of the same command skips the videos it already completed (--overwrite redoes
    them) and completes those an interruption left unfinished. Exit codes: 0 when every video
    was tracked (a video without a face is a result: a warning, no face in any frame); 2 when any
    video failed (the others are still tracked; see OUT/summary.csv) or on bad options;
    130 on Ctrl-C.
    """
    from rich.console import Console

    from crct_cli import batch
    from crct_cli.api import check_tracker_options
    from crct_cli.batch.discover import discover
    from crct_cli.batch.runner import BatchOptions
    from crct_cli.batch.worker import WorkerSpec, settings_of
    from crct_cli.geometry import check_crops
    from crct_cli.io.landmarks import check_pts_origin
    from crct_cli.io.openface_csv import check_csv_style
    from crct_cli.tracking.pipeline import FrameRange

    check_crops(crops)
    check_csv_style(csv_style)
    check_pts_origin(pts_origin)
    frames_in = FrameRange.of(skip_frames, max_frames)
    options = BatchOptions(
        engine, workers, threads, overwrite, ray_address, gpus_per_worker, flags=True
    ).check()
    cores = os.cpu_count() or 1
    if engine == "local" and threads is not None and threads * max(1, workers or 1) > cores:
        _warning_line(  # each worker's libraries then fight over the cores
            f"--threads {threads} x {max(1, workers or 1)} worker(s) is more than this "
            f"machine's {cores} CPU(s): they will slow each other down"
        )
    tracker_options: dict[str, Any] = {
        "faces": faces,
        "device": device,
        "mode": mode,
        "denoise": denoise,
        "tb": tb,
        "tc": tc,
        "seq_bt": seq_bt,
        "detect_every": detect_every,
        "max_lost": max_lost,
        "init_box": _parse_box(init_box),
        "backend": backend,
        "int8": int8,
        "relaxed_redetect": relaxed_redetect,
        "stretched_look": stretched_look,
        "reacquire": reacquire,
        "redetect_fallback": redetect_fallback,
        "check_refined": check_refined,
        "redetect_on_loss": redetect_on_loss,
        "lost_points": lost_points,
        "lost_follow": lost_follow,
        "lost_flip": lost_flip,
        "lost_doubted": lost_doubted,
        "gate_growth": gate_growth,
        "likeness": likeness,
        "find": find,
        "find_wide": find_wide,
        "backfill": backfill,
        "blend": blend,
        "video_fll": video_fll,
        "flip": flip,
        "bt_reuse": bt_reuse,
        "smooth": smooth,
        "smooth_cutoff": smooth_cutoff,
        "smooth_beta": smooth_beta,
        "lookahead": lookahead,
        "backtrack": backtrack,
        "bridge_lost": bridge_lost,
        "temporal_denoise": temporal_denoise,
        "temporal_radius": temporal_radius,
        "temporal_strength": temporal_strength,
        "noise_threshold": noise_threshold,
        "shot_cuts": shot_cuts,
        "cut_correlation": cut_correlation,
        "cut_histogram": cut_histogram,
        "sequence_fps": sequence_fps,
        "rotate": rotate,
        "min_face": min_face,
        "pose": pose,
        "focal_length": focal_length,
    }
    check_tracker_options(tracker_options)  # what every worker's Tracker would refuse
    _warn_focal_without_pose(focal_length, pose)
    _warn_unused(tracker_options)
    jobs = discover(videos, out)
    console = Console(stderr=True, highlight=False)
    if len(jobs) == 1 and jobs[0].output == "." and engine == "local":
        settings = settings_of(tracker_options, frames_in, csv_style, pts_origin)
        spec = WorkerSpec(
            tracker_options,
            settings,
            overlay,
            threads or 0,
            batch.NETWORKS_FACTORY,
            crops,
            frames_in,
            pts,
            flags=True,
        )
        _track_lone_video(console, jobs[0], spec, overwrite)
    else:
        _track_batch(
            console,
            jobs,
            out,
            tracker_options,
            overlay,
            options,
            crops,
            frames_in,
            pts,
            csv_style,
            pts_origin,
        )


def _track_lone_video(console: Any, job: Any, spec: Any, overwrite: bool) -> None:
    """``crct track a.mp4 --out DIR``: in this process, the outputs in DIR itself, a table."""
    from crct_cli.batch.resume import (
        Done,
        check_done,
        first_missing,
        foreign_outputs,
        forget_failed,
        other_input,
    )
    from crct_cli.batch.runner import exclusive_out
    from crct_cli.batch.worker import VideoWorker
    from crct_cli.tracking.orientation import parse_rotate
    from crct_cli.ui import frame_progress, print_track_summary, short_file_line

    if not overwrite:
        foreign = foreign_outputs(job)
        if foreign is not None:
            raise CrctError(foreign)
        done = check_done(job, spec.settings, spec.overlay, spec.crops, spec.pts)
        if isinstance(done, Done):
            _warning_line(
                f"{job.label}: already tracked into {job.out_dir} with these settings "
                f"({done.status}, {done.frames} frames); skipped (--overwrite tracks it again)"
            )
            return
    before = other_input(job)
    if before is not None:
        _warning_line(f"{job.out_dir} held crct's tracking of {before}; {job.label} replaces it")
    made = first_missing(job.out_dir)
    make_output_folder(job.out_dir)
    worker = VideoWorker(spec)
    with exclusive_out(job.out_dir), frame_progress(console, job.source.name) as on_frame:
        result = worker.run(job, on_frame)
    if result.status == "failed":
        forget_failed(job, made)  # the folders made for it go (its lock is gone now)
        _error_line(result.error)
        raise typer.Exit(EXIT_BAD_INPUT)
    print_track_summary(console, worker.last_summary, worker.tracker.timings)
    if result.status == "no_face":
        as_it_came = parse_rotate(spec.tracker_options.get("rotate", 0)) == 0
        hint = " (a video lying on its side: --rotate auto)" if as_it_came else ""
        from crct_cli.tracking.detector import MIN_FACE

        size = _frame_size(job.source)
        if size is not None and min(size) < MIN_FACE:  # no face fits: turning would not help
            hint = f" (its frames are {size[0]}x{size[1]} pixels, too small to hold a face)"
        _warning_line(f"{job.label}: no face found in any of its {result.frames} frames{hint}")
    if result.missing_frames:
        _warning_line(short_file_line(job.label, result.frames, result.missing_frames))


def _frame_size(video: Path) -> tuple[int, int] | None:
    """A video's (width, height), None where it cannot be read (said elsewhere)."""
    from crct_cli.io.video import probe_video

    try:
        info = probe_video(video)
    except CrctError:
        return None
    return info.width, info.height


def _track_batch(
    console: Any,
    jobs: list[Any],
    out: Path,
    tracker_options: dict[str, Any],
    overlay: bool,
    options: Any,
    crops: int = 0,
    frames_in: "FrameRange | None" = None,
    pts: bool = True,
    csv_style: str = "crct",
    pts_origin: int = 0,
) -> None:
    """Many videos: resume, the engine's workers, OUT/summary.csv, one last line."""
    from crct_cli import batch
    from crct_cli.api import run_videos
    from crct_cli.batch.summary import SUMMARY_NAME
    from crct_cli.ui import BatchProgress, print_batch_report

    try:
        with BatchProgress(console, len(jobs)) as display:
            report = run_videos(
                jobs,
                out,
                tracker_options,
                overlay,
                options,
                crops,
                display,
                batch.NETWORKS_FACTORY,
                frames_in,
                pts,
                csv_style,
                pts_origin,
            )
    except KeyboardInterrupt:
        typer.echo(f"crct: interrupted{_batch_left(out / SUMMARY_NAME)}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    print_batch_report(console, report, out / SUMMARY_NAME)
    if report.failed:
        raise typer.Exit(EXIT_BAD_INPUT)


def _batch_left(summary: Path) -> str:
    """What an interrupted batch leaves, from its summary.csv (written as it stopped): the
    videos done and how to track the rest ("" where the summary cannot be read)."""
    from crct_cli.batch.summary import read_summary

    try:
        rows = read_summary(summary)
    except (OSError, ValueError):
        return ""
    pending = sum(row.get("status") == "pending" for row in rows)
    if not rows or not pending:
        return ""
    return (
        f": {len(rows) - pending} of {len(rows)} videos done, {pending} pending in {summary};"
        " the same command again tracks the rest"
    )


class _InputFailures:
    """``crct align``, ``denoise`` and ``degrade`` over several inputs, as ``crct track``: each
    bad input is one ``crct: error:`` line when it fails, the others go on, and the exit code is
    2 at the end. Printed through the command's console, so a progress bar stays below."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        line = " ".join(str(message).split())
        self.lines.append(line)
        self.say(f"crct: error: {line}")

    def say(self, text: str) -> None:
        """One line, never wrapped nor read as markup or emoji (it holds file names)."""
        self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def exit_if_any(self) -> None:
        if self.lines:
            raise typer.Exit(EXIT_BAD_INPUT)


def _weight_file_given(given: Path, default_dir: Path) -> Path:
    """``--weights``: a path with a folder in it, or a file in the current folder, is that very
    file; a bare name found nowhere else is looked up in the weights folder (as the defaults
    are). A missing file is named as the user wrote it: reinstalling would not bring it."""
    if given.is_absolute() or len(given.parts) > 1 or given.exists():
        if given.is_dir():
            raise CrctError(f"--weights: {given} is a folder, not a weight file")
        if not given.is_file():
            raise CrctError(f"--weights: weight file {given} is missing")
        return given
    if not (default_dir / given).is_file():
        raise CrctError(
            f"--weights: weight file {given} is missing (neither in the current folder nor "
            f"in {default_dir})"
        )
    return given


@app.command()
def align(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Images or folders (recursive).",
            metavar="PATH...",
            show_default=False,
            readable=False,  # crct says why an image cannot be read, and aligns the others
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder.", metavar="DIR", show_default=False)
    ],
    box_from_pts: Annotated[
        bool,
        typer.Option(
            help="Use the box of the NAME.pts beside each image instead of detecting "
            "(the papers' protocol; nothing else is read from it)."
        ),
    ] = False,
    overlay: Annotated[bool, typer.Option(help="Also write NAME_overlay.jpg.")] = False,
    crops: Annotated[
        int,
        typer.Option(
            help="Also write each face cut out, eyes level, SIZE px square: NAME_crop.png, "
            "with its points in crop pixels in NAME_crop.pts (as crct track --crops). 0: none.",
            metavar="SIZE",
        ),
    ] = 0,
    pts_origin: PtsOriginOption = 0,
    pose: Annotated[
        bool,
        typer.Option(
            help="Also write each face's head pose from its points to DIR/poses.csv: its .pts "
            "file, then OpenFace's pose_Tx/Ty/Tz (mm) and pose_Rx/Ry/Rz (radians), as crct "
            "track --pose.",
        ),
    ] = False,
    focal_length: Annotated[
        float | None,
        typer.Option(
            help="With --pose: the camera's focal length in pixels (default: 500 at 640x480, "
            "scaled with the image).",
            metavar="PX",
            show_default=False,
        ),
    ] = None,
    flip: Annotated[
        bool,
        typer.Option(
            help="Average with the mirrored face (twice the network time, a little more "
            "accurate); --no-flip for speed."
        ),
    ] = True,
    blend: Annotated[
        bool,
        typer.Option(
            help="Return the mean of FLL's first pass and its second stage (a small ensemble "
            "at no extra cost); --no-blend keeps the second stage's answer alone."
        ),
    ] = True,
    rotate: Annotated[
        str,
        typer.Option(
            help="Turn each image this many degrees clockwise before looking for faces, for "
            "photos lying on their side with no EXIF tag that says so (a tag is applied "
            "already); auto: per image, the quarter turn in which a face shows most surely "
            "(four detections an image). The points are in the image's own pixels.",
            metavar="0|90|180|270|auto",
        ),
    ] = "0",
    min_face: MinFaceOption = "20",
    denoise: DenoiseOption = "none",
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
) -> None:
    """Find 68 landmarks in still images: DIR/NAME.pts (NAME_1.pts... for more faces).

    An image that cannot be read is one error line and the others are still aligned (exit code
    2 at the end); an image without a face is a warning line, not an error.
    """
    from rich.console import Console

    from crct_cli.align_images import align_images, check_still_rotate, collect_images
    from crct_cli.aligner import STILL_ALIGN, check_denoise
    from crct_cli.geometry import check_crops
    from crct_cli.io.landmarks import check_pts_origin
    from crct_cli.pose import HeadPoser, check_focal
    from crct_cli.runtime import Runtime
    from crct_cli.tracking.detector import check_min_face
    from crct_cli.ui import item_progress

    check_denoise(denoise)
    check_crops(crops)
    check_pts_origin(pts_origin)
    check_focal(focal_length)
    angle = check_still_rotate(rotate, box_from_pts)
    check_min_face(min_face)  # before the networks load; the detector keeps its own spelling
    _warn_focal_without_pose(focal_length, pose)
    console = Console(stderr=True, highlight=False, soft_wrap=True)  # paths are never wrapped
    failures = _InputFailures(console)
    items = collect_images(paths, failures, out)
    if not items:  # every input failed, each in its line
        raise typer.Exit(EXIT_BAD_INPUT)
    runtime = Runtime(backend, device)
    poser = HeadPoser(runtime.weights_dir, focal_length) if pose else None
    config = dataclasses.replace(STILL_ALIGN, flip=flip, blend=blend)
    aligner, _, _ = runtime.aligner(denoise, config)
    if box_from_pts:

        def detect(image: Any) -> list:
            return []
    else:
        detect = runtime.detector(min_face)

    with item_progress(console, "aligning", len(items)) as on_image:
        summary = align_images(
            paths,
            out,
            detect,
            lambda im, b: aligner(im, b[None])[0],
            box_from_pts,
            overlay,
            on_image,
            items,
            crops,
            poser,
            on_failure=failures,
            rotate=angle,
            pts_origin=pts_origin,
        )
    for missed in summary.without_face:  # a result, as a video without a face in crct track
        failures.say(f"crct: warning: {missed}: no face found")
    if summary.images:
        failed = f"; {len(failures.lines)} failed" if failures.lines else ""
        turned = f", {len(summary.turned)} read turned" if angle == "auto" else ""
        failures.say(
            f"{summary.faces} face(s) in {summary.images - len(summary.without_face)} of "
            f"{summary.images} image(s){turned} -> {out}{failed}"
        )
    failures.exit_if_any()


@app.command()
def draw(
    run: Annotated[
        Path | None,
        typer.Argument(
            help="A crct track output folder (or its track.json) to draw as --overlay would.",
            metavar="[RUN]",
            show_default=False,
        ),
    ] = None,
    pts: Annotated[
        list[Path] | None,
        typer.Option(
            help="A folder of .pts files in the 300-VW layout (000001.pts is the first frame) "
            "to draw as crosses in its own colour: ground truth, dlib's, another run's annot/. "
            "Repeat for more.",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    video: Annotated[
        Path | None,
        typer.Option(
            help="The video (or folder of frames) to draw on. Default: the run's own.",
            metavar="PATH",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="The video to write. Default: draw.mp4 beside the run's track.json.",
            metavar="FILE.mp4",
            show_default=False,
        ),
    ] = None,
    max_frames: Annotated[
        int | None,
        typer.Option(help="At most N frames. Default: the run's.", metavar="N", show_default=False),
    ] = None,
    skip_frames: Annotated[
        int | None,
        typer.Option(
            help="Start after the first N frames. Default: the run's (a new start keeps the "
            "run's last frame).",
            metavar="N",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output video.")
    ] = False,
) -> None:
    """Draw landmarks already computed on their video: a run without tracking again, .pts folders.

    A run made without --overlay is drawn from its track.json as --overlay would have drawn it,
    on the video it recorded (found from any folder, and checked to be that video); .pts folders
    are drawn beside it (or alone, with --video and --out), each in its own colour and named in
    a legend. A .pts file that cannot be read is a warning; the others are drawn.
    """
    from rich.console import Console

    from crct_cli.overlay import draw_overlay, pts_style
    from crct_cli.ui import frame_progress

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    name = (run or video or Path("draw")).resolve().name
    with frame_progress(console, name) as on_frame:
        summary = draw_overlay(
            run,
            out,
            video=video,
            pts=pts or [],
            max_frames=max_frames,
            skip_frames=skip_frames,
            overwrite=overwrite,
            on_frame=on_frame,
        )
    for line in summary.bad_pts[:3]:
        _warning_line(f"{line} (left out)")
    if len(summary.bad_pts) > 3:
        _warning_line(f"{len(summary.bad_pts) - 3} more .pts files could not be read (left out)")
    if run is not None and summary.with_run == 0:
        _warning_line(f"{run}: none of the frames drawn is one the run tracked")
    parts = [f"{summary.frames} frame{'s' * (summary.frames != 1)} of {summary.video}"]
    if run is not None:
        parts.append(f"the run's points on {summary.with_run}")
    for i, (folder, n) in enumerate(zip(pts or [], summary.with_pts, strict=True)):
        parts.append(f"{folder} on {n} ({pts_style(i)[2]})")
    console.print(f"{'; '.join(parts)} -> {summary.out}", markup=False)


@app.command()
def live(
    source: Annotated[
        str,
        typer.Argument(
            help="A camera by its number (0: the first), a stream (rtsp://..., http://...), or "
            "a video file read as if live.",
            metavar="[CAMERA|STREAM|VIDEO]",
        ),
    ] = "0",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Also write the session here: landmarks.csv and track.json (as crct track "
            "--no-pts writes them), each renamed into place when the session ends.",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    overlay: Annotated[
        bool, typer.Option(help="With --out: also write overlay.mp4, the frames as shown.")
    ] = False,
    show: Annotated[
        bool,
        typer.Option(
            help="Show each frame with its faces' points in a window (q or Esc stops); "
            "--no-show: no window (a server, or only writing --out; Ctrl-C stops).",
        ),
    ] = True,
    max_frames: Annotated[
        int | None,
        typer.Option(help="Stop after N frames.", metavar="N", show_default=False),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a session or run already in --out.")
    ] = False,
    faces: FacesOption = "1",
    mode: ModeOption = "crct",
    rotate: Annotated[
        str,
        typer.Option(
            help="Turn every frame this many degrees clockwise first (a camera on its side).",
            metavar="0|90|180|270",
        ),
    ] = "0",
    min_face: MinFaceOption = "20",
    smooth: Annotated[
        bool,
        typer.Option(
            help="A One Euro filter on each face's shape, its pose never delayed (crct track's "
            "causal filter); --no-smooth: each frame's points as FLL gave them.",
        ),
    ] = True,
    shot_cuts: Annotated[
        bool,
        typer.Option(
            help="Look for shot cuts in the stream (an edited broadcast): faces are found "
            "afresh at a cut and get new ids, as crct track does; --no-shot-cuts for a camera "
            "where someone may pass right in front of the lens.",
        ),
    ] = True,
    pose: PoseOption = False,
    focal_length: FocalLengthOption = None,
    denoise: DenoiseOption = "none",
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
) -> None:
    """Track 68 landmarks live, frame by frame, from a camera or a stream, and show them.

    Each frame is tracked as it arrives (Algorithm 1 with the causal filter: nothing waits for
    later frames) and shown with its faces' points, ids and states; with --out the session is
    also written (landmarks.csv, track.json, --overlay's overlay.mp4), complete up to the frame
    it ended on: q or Esc, the window closed, Ctrl-C, --max-frames, or the stream's end. A
    video file is read as fast as the tracker goes; crct track gives a file better points
    (it looks ahead and back).
    """
    from rich.console import Console

    from crct_cli import batch
    from crct_cli.api import Tracker
    from crct_cli.live import check_live_rotate, check_session, run_live

    angle = check_live_rotate(rotate)
    check_session(out, overlay, show)  # before the networks load
    _warn_focal_without_pose(focal_length, pose)
    made = out is not None and not out.exists()  # removed again if the session writes nothing
    if out is not None:
        if out.exists() and not out.is_dir():
            raise CrctError(f"{out}: not a folder")
        if (out / "track.json").exists() and not overwrite:
            raise OptionError(
                "overwrite",
                "is not given, and a session or run is already there",
                cli="replaces a session or run already there",
                where=str(out),
            )
        make_output_folder(out)
    factory = batch.NETWORKS_FACTORY
    with _removed_if_left_empty(out if made else None):
        tracker = Tracker(
            faces,
            device,
            mode=mode,
            denoise=denoise,
            backend=backend,
            smooth=smooth,
            rotate=angle,
            min_face=min_face,
            shot_cuts=shot_cuts,
            pose=pose,
            focal_length=focal_length,
            networks=None if factory is None else factory(),
        )
        summary = run_live(source, tracker, out, overlay=overlay, show=show, max_frames=max_frames)
        if summary.frames == 0:
            raise CrctError(f"{source}: no frame could be read")
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    line = (
        f"{summary.frames} frames from {source} ({summary.fps:.1f} fps), a face in "
        f"{summary.with_points}; ended: {summary.ended}"
    )
    if summary.dropped:
        line += f"; {summary.dropped} frames came while one was tracked (dropped)"
    if summary.rescaled:
        line += f"; {summary.rescaled} frames of another size fitted into the first frame size"
    console.print(line + (f" -> {out}" if out is not None else ""), markup=False)
    if summary.with_points == 0:
        _warning_line(f"{source}: no face found in any of its {summary.frames} frames")


@contextlib.contextmanager
def _removed_if_left_empty(folder: Path | None) -> Iterator[None]:
    """``folder`` (made by this command) removed again if the block fails leaving it empty:
    a source that cannot be opened left an empty session folder behind."""
    try:
        yield
    except BaseException:
        if folder is not None and folder.is_dir() and not any(folder.iterdir()):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


_DENOISE_HELP = (
    "Remove blur, noise, low resolution and darkening with FADeNN's internal denoiser (IID)."
    "\n\n"
    "Every image or video frame keeps its size (a video of odd width or height is written "
    "padded by one pixel, its last column or row repeated: H.264's usual yuv420p needs even "
    "sides). With s and m the noise class is the "
    "classifier's mean vote over the faces MTCNN finds, each cut as the classifier's training "
    "faces were (112 px); in a picture without a face, over up to nine 112-px tiles around the "
    "centre, at full resolution. The DAE of that class (or d's single DAE) then runs over the "
    "whole picture at full resolution, in tiles. A picture classed clean is left untouched (an "
    "image file is copied as is)."
    "\n\n"
    "Folders are mirrored under DIR, with their .pts files copied alongside; a video is written "
    "at its own frame rate. With s and m the class of every image and frame is shown in a table "
    "and saved in DIR/noise_classes.json."
    "\n\n"
    "An input that cannot be read is one error line and the others are still denoised (exit "
    "code 2 at the end)."
)


@app.command(help=_DENOISE_HELP)
def denoise(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Images, videos or folders (recursive).",
            metavar="PATH...",
            show_default=False,
            readable=False,  # crct says why an input cannot be read, and denoises the others
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder.", metavar="DIR", show_default=False)
    ],
    variant: Annotated[
        str,
        typer.Option(
            "--variant",
            help="d: one DAE for everything; s: single-task noise classifier + a DAE per noise "
            "type; m: multi-task classifier + a DAE per noise type.",
            metavar="d|s|m",
        ),
    ] = "m",
    weights_file: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="IID weight file (default: weights/iid_<variant>.pt).",
            metavar="PT",
            show_default=False,
        ),
    ] = None,
    smoothing: Annotated[
        float,
        typer.Option(
            help="Videos: weight of past frames in the noise-class decision (0: every frame on "
            "its own), so the class does not flicker.",
            min=0.0,
            max=0.99,
        ),
    ] = 0.8,
    detect_every: Annotated[
        int,
        typer.Option(
            help="Videos: look for faces (MTCNN) on every N-th frame; the frames between are "
            "classified on the faces the last look found (on tiles if none). 1: every frame "
            "(slower).",
            metavar="N",
        ),
    ] = 5,  # crct_cli.denoise.DETECT_EVERY
    min_face: MinFaceOption = "20",
    device: DeviceOption = "auto",
    backend: BackendOption = "auto",
) -> None:
    """Remove blur, noise, low resolution and darkening with FADeNN's internal denoiser."""
    from rich.console import Console

    from crct_cli.denoise import (
        ImageDenoiser,
        check_detect_every,
        check_smoothing,
        denoise_progress,
        noise_classes_table,
        plan_denoise,
        run_plan,
        write_classes_json,
    )
    from crct_cli.models import weights
    from crct_cli.runtime import Runtime
    from crct_cli.runtime.iid import VARIANTS, iid_file
    from crct_cli.tables import print_tables
    from crct_cli.tracking.detector import check_min_face

    check_smoothing(smoothing)
    check_detect_every(detect_every)
    check_min_face(min_face)  # before the networks load; the detector keeps its own spelling
    if variant not in VARIANTS:
        raise CrctError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    source = (
        weights.WEIGHTS_DIR / iid_file(variant)
        if weights_file is None
        else _weight_file_given(weights_file, weights.WEIGHTS_DIR)
    )
    runtime = Runtime(backend, device)
    console = Console(stderr=True, highlight=False, soft_wrap=True)  # paths are never wrapped
    failures = _InputFailures(console)
    plan = plan_denoise(paths, out, failures)
    if not plan.jobs:  # every input failed, each in its line
        raise typer.Exit(EXIT_BAD_INPUT)
    den: Any
    if runtime.backend == "onnx":
        from crct_cli.runtime.iid import OnnxImageDenoiser

        den = OnnxImageDenoiser(runtime.iid_graphs(source), detector=None)
        found, iid_path = den.variant, runtime.weight_files["iid"]
    else:
        from crct_cli.models.fadenn import load_iid

        blob = weights.load_weights(source, "iid", weights.WEIGHTS_DIR)
        den = ImageDenoiser(load_iid(blob), runtime.device, detector=None)
        found, iid_path = den.variant, blob["path"]
    if found != variant:
        raise CrctError(f"{iid_path} holds IID-{found}, not --variant {variant}")
    if variant != "d":  # S and M classify the faces, as their classifier was trained
        den.detector = runtime.detector(min_face)
    with denoise_progress(console, len(plan.jobs)) as (on_item, on_frame):
        records = run_plan(plan, den, on_item, on_frame, smoothing, failures, detect_every)
    from crct_cli.ui import short_file_line

    for record in records:  # as crct track warns of them
        if record.missing_frames:
            line = short_file_line(record.input, record.frames, record.missing_frames, "written")
            failures.say(f"crct: warning: {line}")
    if records:
        n_frames = sum(r.frames for r in records)
        if variant != "d":
            print_tables([noise_classes_table(records, f"noise classes (IID-{variant.upper()})")])
            where = write_classes_json(out, records, variant, iid_path, smoothing, detect_every)
            failures.say(f"wrote {where}")
        failed = f"; {len(failures.lines)} failed" if failures.lines else ""
        failures.say(
            f"denoised {plan.count('image')} image(s) and {plan.count('video')} video(s)"
            + (f" ({n_frames} frames)" if n_frames else "")
            + f" with IID-{variant.upper()} -> {out}{failed}"
        )
    failures.exit_if_any()


@app.command()
def degrade(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Images, videos or folders (recursive).",
            metavar="PATH...",
            readable=False,  # crct says why an input cannot be read, and degrades the others
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder.", metavar="DIR", show_default=False)
    ],
    noise_type: Annotated[
        str | None,
        typer.Option(
            "--noise",
            "--type",
            "-t",
            help="downsample | blur | noise | scale (also called color).",
            metavar="TYPE",
            show_default=False,
        ),
    ] = None,
    level: Annotated[
        int | None,
        typer.Option(
            "--level", "-l", help="0 (unchanged), 1, 2 or 3.", metavar="0-3", show_default=False
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="Seed for reproducible Gaussian noise.", metavar="N", show_default=False),
    ] = None,
    all_sets: Annotated[
        bool,
        typer.Option(
            "--all", help="Write clean/ and every <type>/<level>/ set (300W-Test-N style)."
        ),
    ] = False,
    lossless: Annotated[
        bool | None,
        typer.Option(
            "--lossless/--lossy",
            help="Videos: write every pixel (H.264 or VP9, lossless 4:4:4; files several "
            "times larger), or as crct writes other videos. Default: lossless for the noise "
            "sets only, whose grain lossy coding would weaken (to about 0.6 of its std).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Degrade images, folders or videos with FADeNN's four noise types and levels.

    An input that cannot be read is one error line and the others are still degraded (exit code
    2 at the end).
    """
    from rich.console import Console
    from rich.progress import track as progress

    from crct_cli.degrade import plan_degrade
    from crct_cli.noise import canonical_noise_type

    if noise_type is not None:
        noise_type = canonical_noise_type(noise_type)
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    failures = _InputFailures(console)
    plan = plan_degrade(
        paths,
        out,
        noise_type,
        level,
        all_sets=all_sets,
        seed=seed,
        on_failure=failures,
        lossless=lossless,
    )
    if not plan.items:  # every input failed, each in its line
        raise typer.Exit(EXIT_BAD_INPUT)
    exact = plan.lossless_videos()
    if exact and lossless is None:  # said before the disk fills, not after
        console.print(
            f"{exact} noise-set video(s) written losslessly, several times larger than the "
            "others, so that coding keeps their noise (--lossy to code them as other videos)"
        )
    steps = plan.run(failures)
    bar = progress(steps, "degrading", total=len(plan), console=console, transient=True)
    for _ in bar if console.is_terminal else steps:
        pass
    from crct_cli.ui import short_file_line

    for src, (frames, missing) in plan.short.items():  # as crct track warns of them
        failures.say(f"crct: warning: {short_file_line(str(src), frames, missing, 'written')}")
    for dst in plan.lossy:
        failures.say(
            f"crct: warning: {dst}: no lossless encoder for {dst.suffix} in this build; "
            "written lossy, its noise weakened (an .mp4 or .mkv output keeps it)"
        )
    written = plan.count("image") + plan.count("video")
    if written:
        counts = (
            f"{plan.count('image')} image(s), {plan.count('video')} video(s), "
            f"{plan.count('copy')} copied file(s)"
        )
        failed = f"; {len(failures.lines)} failed" if failures.lines else ""
        where = f"{len(plan.variants)} sets under " if all_sets else ""
        layout = " (clean/ and <type>/<level>/)" if all_sets else ""
        failures.say(
            f"degraded {counts} into {where}{plan.out_dir}{layout}, seed {plan.seed}{failed}"
        )
    if plan.skipped:
        failures.say(f"skipped {len(plan.skipped)} file(s) that are not images, videos or .pts")
    failures.exit_if_any()


def _as_track(flag: str, **extra: Any) -> Any:
    """A ``crct benchmark`` option for video methods that means what ``crct track``'s does."""
    return typer.Option(
        help=f"--dataset videos: as crct track {flag}.", rich_help_panel=_PANEL_AS_TRACK, **extra
    )


@app.command()
def benchmark(
    videos: Annotated[
        list[Path] | None,
        typer.Argument(help="Videos to time with --speed.", metavar="VIDEO...", show_default=False),
    ] = None,
    pred: Annotated[
        Path | None,
        typer.Option(
            help="Folder of predicted .pts files, or a multi-face run's landmarks.csv (or a "
            "folder of <sequence>/landmarks.csv). A crct track run's annot/ folder is also "
            "scored by the tracker's state, read from the track.json beside it; a run without "
            ".pts files (--no-pts, crct live) by its folder, track.json or landmarks.csv "
            "(face 0).",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    gt: Annotated[
        Path | None,
        typer.Option(
            help="Folder of ground-truth .pts files, or multi-face sequence(s) with "
            "faces/<id>/000001.pts ...",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    norm: Annotated[
        str,
        typer.Option(
            help="NME normalisation: diagonal | area | interocular.",
            metavar="diagonal|area|interocular",
        ),
    ] = "diagonal",
    threshold: Annotated[
        float, typer.Option(help="AUC cut-off and failure threshold.", metavar="NME")
    ] = 0.08,
    nearest: Annotated[
        bool,
        typer.Option(
            help="--pred/--gt: of NAME.pts, NAME_1.pts... (one per face found, as crct align "
            "writes), score the face nearest the ground truth."
        ),
    ] = False,
    common_with: Annotated[
        Path | None,
        typer.Option(
            help="--pred/--gt: score only the files both --pred and this folder (a peer's "
            ".pts) answered, so two tools are compared on the same faces whichever is scored "
            "beside which; on video frames, also the jitter over the frame pairs both tools "
            "have on the face.",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    gt_origin: Annotated[
        float | None,
        typer.Option(
            help="--pred/--gt and --dataset: the coordinate the ground-truth files give the "
            "first pixel's centre, taken off before scoring: 1 for 300-W's and 300-VW's own "
            "files (crct, OpenCV and dlib count from 0). Default 0, or what a crct track run "
            "given as --gt records (--pts-origin).",
            metavar="X",
            show_default=False,
        ),
    ] = None,
    pred_origin: Annotated[
        float | None,
        typer.Option(
            help="--pred/--gt: the coordinate the predicted .pts files give the first pixel's "
            "centre, taken off before scoring: 1 for files written with crct track/align "
            "--pts-origin 1, or counted as 300-W's. Default 0, or what a crct track run given "
            "as --pred records in its track.json (said in a note).",
            metavar="X",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write results.json (and per_file.csv, or the CED plots) here.",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="300vw-cat1 | 300vw-cat2 | 300vw-cat3 | 300vw (every sequence under the root) "
            "| 300w | menpo | images | multi (several faces per video, per-face ground truth).",
            metavar="NAME",
            show_default=False,
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="Dataset folder (default: $CRCT_DATA/300VW, $CRCT_DATA/300W, $CRCT_DATA/menpo).",
            metavar="DIR",
            show_default=False,
        ),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="Comma list of mode[+denoise-VARIANT] (default: crct,fll-mt,bt for videos, "
            "fll for images, crct for --speed).",
            metavar="LIST",
            show_default=False,
        ),
    ] = None,
    seq_bt: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=_PANEL_AS_TRACK,
            help="SeqBT: frames between LSTM resets (default 2).",
            metavar="FRAMES",
            show_default=False,
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="Videos: gt (the first frame's ground-truth box, the papers' protocol; "
            "default) or detect (MTCNN).",
            metavar="gt|detect",
            show_default=False,
        ),
    ] = None,
    device: DeviceOption = "auto",
    backend: Annotated[
        str,
        typer.Option(
            rich_help_panel=_PANEL_SPEED,
            help="--speed: time this backend only (auto: every backend that runs here, "
            "torch and onnx on the CPU).",
            metavar="auto|torch|onnx",
        ),
    ] = "auto",
    noise: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="Still images: all (clean + the 12 degraded sets), none, or TYPE-LEVEL "
            "(e.g. blur-3); made on the fly.",
            metavar="all|none|TYPE-LEVEL",
            show_default=False,
        ),
    ] = None,
    box_from_pts: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="Still images: start from the box of the ground-truth points (the papers' "
            "protocol) instead of detecting.",
        ),
    ] = False,
    seed: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="Seed of the Gaussian noise sets (default 0).",
            metavar="N",
            show_default=False,
        ),
    ] = None,
    max_frames: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="Videos: score only the first N frames (quick runs).",
            metavar="N",
            show_default=False,
        ),
    ] = None,
    speed: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_SPEED,
            help="Time decoding, each network and crct track on the VIDEO arguments "
            "(CPU, and CUDA when present).",
        ),
    ] = False,
    int8: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_NETS,
            help="Videos and --speed: track as crct track does by default, with BT and FLL's "
            "first stage on int8 graphs on the CPU; --no-int8: float32 throughout.",
        ),
    ] = True,
    relaxed_redetect: Annotated[
        bool,
        typer.Option(
            rich_help_panel=_PANEL_AS_TRACK,
            help="--dataset videos: re-find a lost face as crct track does by default, with "
            "a second, more sensitive MTCNN look; --no-relaxed-redetect: the paper's alone.",
        ),
    ] = True,
    stretched_look: Annotated[bool, _as_track("--stretched-look")] = False,
    reacquire: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_AS_TRACK,
            help="--dataset videos: as crct track --reacquire (0: eq. 8's gate always).",
            metavar="FRAMES",
        ),
    ] = 25,
    tb: Annotated[float, _as_track("--tb", metavar="TB")] = 1.0,
    tc: Annotated[float, _as_track("--tc", metavar="TC")] = 0.5,
    redetect_fallback: Annotated[bool, _as_track("--redetect-fallback")] = True,
    check_refined: Annotated[bool, _as_track("--check-refined")] = True,
    redetect_on_loss: Annotated[bool, _as_track("--redetect-on-loss")] = True,
    lost_points: Annotated[str, _as_track("--lost-points", metavar="fll|bt")] = "fll",
    lost_follow: Annotated[bool, _as_track("--lost-follow")] = True,
    lost_flip: Annotated[bool, _as_track("--lost-flip")] = True,
    lost_doubted: Annotated[bool, _as_track("--lost-doubted")] = True,
    gate_growth: Annotated[float, _as_track("--gate-growth", metavar="GATE")] = 0.2,
    likeness: Annotated[float, _as_track("--likeness", metavar="R")] = 0.0,
    find: Annotated[bool, _as_track("--find")] = True,
    find_wide: Annotated[float, _as_track("--find-wide", metavar="TIMES")] = 2.0,
    blend: Annotated[bool, _as_track("--blend")] = True,
    flip: Annotated[bool, _as_track("--flip")] = False,
    video_fll: Annotated[bool, _as_track("--video-fll")] = True,
    bt_reuse: Annotated[float, _as_track("--bt-reuse", metavar="SHARE")] = 0.05,
    smooth: Annotated[bool, _as_track("--smooth")] = True,
    smooth_cutoff: Annotated[float, _as_track("--smooth-cutoff", metavar="HZ")] = 2.5,
    smooth_beta: Annotated[float, _as_track("--smooth-beta", metavar="BETA")] = 5.0,
    lookahead: Annotated[bool, _as_track("--lookahead")] = True,
    backtrack: Annotated[int, _as_track("--backtrack", metavar="FRAMES")] = 10,
    bridge_lost: Annotated[bool, _as_track("--bridge-lost")] = True,
    temporal_denoise: Annotated[bool, _as_track("--temporal-denoise")] = True,
    temporal_radius: Annotated[int, _as_track("--temporal-radius", metavar="FRAMES")] = 2,
    temporal_strength: Annotated[float, _as_track("--temporal-strength", metavar="S")] = 0.8,
    noise_threshold: Annotated[float, _as_track("--noise-threshold", metavar="GREY")] = 2.5,
    min_face: Annotated[str, _as_track("--min-face", metavar="PX|N%")] = "20",
    shot_cuts: Annotated[bool, _as_track("--shot-cuts")] = True,
    cut_correlation: Annotated[float, _as_track("--cut-correlation", metavar="R")] = 0.9,
    cut_histogram: Annotated[float, _as_track("--cut-histogram", metavar="D")] = 0.45,
    faces: Annotated[
        str,
        typer.Option(
            rich_help_panel=_PANEL_DATASETS,
            help="--speed: also time crct track with this many faces (N or all) beside one "
            "face, on the same video: the cost of several faces per frame.",
            metavar="N|all",
        ),
    ] = "1",
    pairs: Annotated[
        int,
        typer.Option(
            rich_help_panel=_PANEL_SPEED,
            help="--speed: alternating whole runs of dlib and crct track per video; medians "
            "are shown, and crct's speed against dlib's pair by pair.",
            min=1,
        ),
    ] = SPEED_PAIRS,
) -> None:
    """Score landmarks: .pts folders (--pred/--gt), datasets (--dataset), speed (--speed)."""
    dataset_only = {
        "--root": root,
        "--init": init,
        "--noise": noise,
        "--seed": seed,
        "--max-frames": max_frames,
        "--box-from-pts": box_from_pts or None,
    }
    pred_only = {
        "--nearest": nearest or None,
        "--common-with": common_with,
        "--pred-origin": pred_origin,
    }
    given_pred = [name for name, value in pred_only.items() if value is not None]
    if given_pred and (speed or dataset is not None):
        raise CrctError(f"{', '.join(given_pred)}: only with --pred/--gt")
    from crct_cli.tracking.tracker import check_gates

    check_gates(tb, tc, 2 if seq_bt is None else seq_bt)
    for flag, origin in (("--gt-origin", gt_origin), ("--pred-origin", pred_origin)):
        if origin is not None and not (math.isfinite(origin) and -1.0 <= origin <= 1.0):
            raise CrctError(  # a convention, not a shift
                f"{flag} must be from -1 to 1 px (where the files put the first pixel's "
                f"centre: 1 for 300-W's, 0.5 for pixel-corner tools), got {origin}"
            )
    gt_given, gt_origin = gt_origin, 0.0 if gt_origin is None else gt_origin
    if out is not None:  # before the scoring, which may take long
        from crct_cli.io.atomic import check_out_folder

        check_out_folder(out)
    if speed:
        if dataset is not None or pred is not None or gt is not None:
            raise CrctError("--speed times VIDEO arguments; leave out --dataset, --pred and --gt")
        if gt_origin:
            raise CrctError("--gt-origin: only with --pred/--gt or --dataset")
        given = [name for name, value in dataset_only.items() if value is not None]
        if given:
            raise CrctError(f"{', '.join(given)}: not for --speed (it takes --methods, --seq-bt)")
        if not videos:
            raise CrctError("--speed needs at least one VIDEO argument")
        from crct_cli.bench.console import run_speed_command

        run_speed_command(
            videos,
            device,
            methods,
            seq_bt,
            out,
            backend=backend,
            faces=faces,
            int8=int8,
            pairs=pairs,
        )
        return
    if videos:
        raise CrctError(f"{videos[0]}: VIDEO arguments are for --speed")
    if faces != "1":
        raise CrctError("--faces: only with --speed (crct track takes --faces itself)")
    if pairs != SPEED_PAIRS:
        raise CrctError("--pairs: only with --speed")
    if backend != "auto":
        raise CrctError("--backend: only with --speed (other runs use auto: onnx on CPU)")
    if dataset is not None:
        if pred is not None or gt is not None:
            raise CrctError("--dataset and --pred/--gt are different benchmarks; give one of them")
        from crct_cli.bench.console import run_dataset_command
        from crct_cli.bench.runner import DatasetRequest
        from crct_cli.tracking.detector import check_min_face

        request = DatasetRequest(
            dataset=dataset,
            root=root,
            methods=methods,
            seq_bt=seq_bt,
            init=init,
            device=device,
            noise=noise,
            box_from_pts=box_from_pts,
            seed=seed,
            norm=norm,
            threshold=threshold,
            max_frames=max_frames,
            gt_origin=gt_origin,
            int8=int8,
            tb=tb,
            tc=tc,
            relaxed_redetect=relaxed_redetect,
            stretched_look=stretched_look,
            reacquire=reacquire,
            redetect_fallback=redetect_fallback,
            check_refined=check_refined,
            redetect_on_loss=redetect_on_loss,
            lost_points=lost_points,
            lost_follow=lost_follow,
            lost_flip=lost_flip,
            lost_doubted=lost_doubted,
            gate_growth=gate_growth,
            likeness=likeness,
            find=find,
            find_wide=find_wide,
            blend=blend,
            video_fll=video_fll,
            flip=flip,
            bt_reuse=bt_reuse,
            smooth=smooth,
            smooth_cutoff=smooth_cutoff,
            smooth_beta=smooth_beta,
            lookahead=lookahead,
            backtrack=backtrack,
            bridge_lost=bridge_lost,
            temporal_denoise=temporal_denoise,
            temporal_radius=temporal_radius,
            temporal_strength=temporal_strength,
            noise_threshold=noise_threshold,
            min_face=check_min_face(min_face),  # "40" is recorded as 40
            shot_cuts=shot_cuts,
            cut_correlation=cut_correlation,
            cut_histogram=cut_histogram,
        )
        from crct_cli.api import check_lost_points
        from crct_cli.runtime.nets import check_find_wide
        from crct_cli.tracking.backtrack import check_backtrack
        from crct_cli.tracking.frame_denoise import FrameDenoiseConfig
        from crct_cli.tracking.shots import ShotCutConfig
        from crct_cli.tracking.smoothing import SmoothConfig
        from crct_cli.tracking.tracker import check_bt_reuse, check_gate_growth, check_likeness

        check_lost_points(lost_points)
        check_bt_reuse(bt_reuse)
        check_gate_growth(gate_growth)
        check_likeness(likeness)
        check_find_wide(find_wide, CrctError)
        check_backtrack(backtrack)
        SmoothConfig(min_cutoff=smooth_cutoff, beta=smooth_beta).check()
        FrameDenoiseConfig(temporal_radius, temporal_strength, noise_threshold).check()
        ShotCutConfig(correlation=cut_correlation, histogram=cut_histogram).check()
        run_dataset_command(request, out)
        return
    dataset_only.update({"--methods": methods, "--seq-bt": seq_bt})
    given = [name for name, value in dataset_only.items() if value is not None]
    if given:
        raise CrctError(f"{', '.join(given)}: only with --dataset (or --speed)")
    if pred is None or gt is None:
        raise CrctError("give both --pred DIR and --gt DIR (or --dataset NAME, or --speed VIDEO)")

    from rich.console import Console

    from crct_cli.bench.multi_face import is_multi_face_gt

    if is_multi_face_gt(gt):  # per-face ground truth: score landmarks.csv
        from crct_cli.bench.console import run_multi_pred_command

        if given_pred or gt_origin:
            raise CrctError(
                f"{', '.join(given_pred + (['--gt-origin'] if gt_origin else []))}: "
                "not for multi-face ground truth"
            )  # (a crct --faces run given as --gt is read at the origin its track.json records)
        run_multi_pred_command(pred, gt, norm, threshold, out)
        return
    from crct_cli.bench.pts_compare import (
        as_pts_folder,
        compare_pts_folders,
        results_tables,
        write_results,
    )
    from crct_cli.tables import print_tables

    def unsplit(exc: CrctError) -> None:
        Console(stderr=True).print(f"not split by state: {exc}", highlight=False, soft_wrap=True)

    # a crct track run's annot/ (its frames by state too), or a run's track.json or csv
    with as_pts_folder(pred, unsplit) as (pred_dir, states):
        # what crct track --pts-origin runs record, unless told otherwise (a run's points read
        # from its track.json or landmarks.csv count from 0 whatever its .pts files do)
        taken_off = _origin_taken_off(pred_origin, "--pred-origin", pred, pred_dir == pred)
        gt_taken_off = _origin_taken_off(gt_given, "--gt-origin", gt)
        peer_taken_off = 0.0
        if common_with is not None:
            peer_taken_off = _origin_taken_off(None, "--common-with", common_with)
        result = compare_pts_folders(
            pred_dir,
            gt,
            norm,  # type: ignore[arg-type]
            threshold,
            nearest=nearest,
            common_with=common_with,
            states=states,
            gt_origin=gt_taken_off,
            pred_origin=taken_off,
            peer_origin=peer_taken_off,
        )
    result = dataclasses.replace(result, pred_dir=str(pred))  # as given, not a temporary copy
    print_tables(results_tables(result))
    if result.other_faces:  # crct align's further faces of an image, not scored
        _warning_line(
            f"{pred}: {result.other_faces} .pts file(s) of further faces (NAME_1.pts...) not "
            "scored; --nearest scores each image's face nearest the ground truth"
        )
    if result.numbering is not None:  # files pair by name: every frame against its neighbour
        first_pred, first_gt = (f"{n:06d}.pts" for n in result.numbering)
        _warning_line(
            f"{pred} numbers its frames from {first_pred} and {gt} from {first_gt}: files are "
            "paired by name, so each frame was scored against its neighbour's ground truth "
            "(crct and 300-VW number from 000001.pts); renumber one of them"
        )
    if result.runs_as_sequences:
        Console(stderr=True).print(
            f"paired {pred}/SEQ/VIDEO/annot/ (crct track's run of each video) with {gt}/SEQ/annot/",
            highlight=False,
            soft_wrap=True,
        )
    for listed, what in (
        (result.skipped_gt, "ground-truth file(s) left out"),
        (result.unreadable, "prediction file(s) unreadable, scored as missing"),
    ):
        if listed:
            _warning_line(f"{len(listed)} {what}; the first: {listed[0][1]}")
    offsets = [] if result.numbering is not None else result.frame_offsets  # said above
    for off in offsets[:3]:  # a shifted pairing: scored, but said
        where = pred if off.folder == "." else Path(pred) / off.folder
        frame = "next frame's" if off.shift > 0 else "frame before's"
        _warning_line(
            f"{where}: its points fit the {frame} ground truth far better than their own "
            f"(median NME {off.median_nme_shifted:.4f} against {off.median_nme:.4f} over "
            f"{off.pairs} frame pairs): numbered one frame off (from 000000.pts, or a first "
            "frame without a file), or a tool a frame late?"
        )
    if len(offsets) > 3:
        _warning_line(f"and {len(offsets) - 3} more folders look a frame off")
    if states is not None and common_with is None:
        # ground-truth frames the run has no record of (not: frames it tracked without a face)
        never = sum(row.rel not in states.states for row in result.per_file)
        if never:
            _warn_part_run(pred, states.header, never)
    if out is not None:
        for path in write_results(result, out):
            Console(stderr=True).print(f"wrote {path}", highlight=False, soft_wrap=True)


def _origin_taken_off(given: float | None, flag: str, folder: Path, as_pts: bool = True) -> float:
    """What to take off the coordinates of ``folder``'s ``.pts`` files before scoring: what the
    user gave (``given``; a warning where the crct runs there record otherwise), else what they
    record (``crct track --pts-origin``, in track.json: a note where it is 1), else 0. Runs that
    record both are refused unless told. ``as_pts`` False: the points are read from a run's
    track.json or landmarks.csv, which count from 0."""
    from crct_cli.io.track_json import recorded_pts_origins

    recorded = set(recorded_pts_origins(folder).values()) if as_pts else {0}
    told = f"{flag} {given:g}" if given is not None else flag
    if given is not None:
        if not recorded or recorded == {given}:
            return given
        counted = " and from ".join(str(o) for o in sorted(recorded))
        if not as_pts:
            where = f"{folder}'s points are read from its track.json or landmarks.csv"
            said = f"{where}, which count from 0"
        else:
            said = f"{folder} holds crct track output whose .pts files count from {counted}"
        _warning_line(f"{told}: {said} (its track.json); {given:g} taken off as given")
        return given
    if recorded == {1}:
        typer.echo(
            f"crct: note: {folder}: crct track --pts-origin 1 output (its track.json says so): "
            f"1 taken off its .pts files before scoring ({flag} 0 scores them as written)"
            if flag != "--common-with"
            else f"crct: note: --common-with {folder}: crct track --pts-origin 1 output (its "
            "track.json says so): 1 taken off its .pts files",
            err=True,
        )
        return 1.0
    if len(recorded) > 1:
        how = "" if flag == "--common-with" else f", or give {flag}"
        raise CrctError(
            f"{folder}: holds crct track runs whose .pts files count from 0 and others from 1 "
            f"(track.json's pts_origin): score them apart{how}"
        )
    return 0.0


def _warn_focal_without_pose(focal_length: float | None, pose: bool) -> None:
    """--focal-length only places the camera for --pose: alone it changes nothing."""
    if focal_length is not None and not pose:
        _warning_line("--focal-length changes nothing without --pose")


def _warn_unused(options: dict[str, Any]) -> None:
    """A tracking option given a value where the other options leave it nothing to do (as
    --focal-length without --pose): said, not refused, since the run is still what was asked."""
    from crct_cli.tracking.backtrack import BACKTRACK
    from crct_cli.tracking.tracker import TrackerConfig

    if not options.get("lookahead", True) and options.get("backtrack", BACKTRACK) != BACKTRACK:
        _warning_line("--backtrack changes nothing without --lookahead")
    mode, tc = options.get("mode", "crct"), TrackerConfig.tc
    if mode != "crct" and options.get("tc", tc) != tc:
        _warning_line(f"--tc changes nothing with --mode {mode} (no face validator)")
    if not options.get("shot_cuts", True):
        from crct_cli.tracking.shots import ShotCutConfig

        for flag, default in (
            ("cut_correlation", ShotCutConfig.correlation),
            ("cut_histogram", ShotCutConfig.histogram),
        ):
            if options.get(flag, default) != default:
                _warning_line(f"--{flag.replace('_', '-')} changes nothing with --no-shot-cuts")


def _warn_part_run(pred: Path, header: dict[str, Any], missing: int) -> None:
    """A run of --max-frames / --skip-frames scored against a whole video's ground truth: the
    frames it never tracked count as failures, which --common-with leaves out."""
    part = [
        f"--{k.replace('_', '-')} {header[k]}" for k in ("skip_frames", "max_frames") if k in header
    ]
    if part:
        _warning_line(
            f"{pred}: a crct track run of some frames ({', '.join(part)}): the {missing} "
            f"ground-truth files it never tracked count as failures; --common-with {pred} "
            "scores its own frames only"
        )


train_app = typer.Typer(
    cls=CrctGroup,
    help="Train the shipped models from folders of image + .pts pairs (300-W style).",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")

_DATA = Path("../shared/data/300w")
TrainDirs = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Training folders of image + .pts pairs (recursive) "
        "(default: ../shared/data/300w/helen_train and lfpw_train).",
        metavar="TRAIN_DIR...",
        show_default=False,
    ),
]
ValDirs = Annotated[
    str,
    typer.Option("--val", help="Validation folder(s), comma-separated.", metavar="DIR[,DIR]"),
]
Steps = Annotated[int | None, typer.Option(help="Optimisation steps (default: the model's own).")]
Seed = Annotated[int, typer.Option(help="Seed: batches are drawn from (seed, step).")]
Resume = Annotated[
    bool,
    typer.Option(
        help="Continue from --checkpoint if it exists (the checkpoint of this very run: "
        "another's, with other data, options, seed or --out, is refused)."
    ),
]
Checkpoint = Annotated[
    Path | None,
    typer.Option(
        help="Checkpoint file, written every 100 steps, best outside the repository "
        "(default: $TMPDIR/crct-ckpt/<model>.ckpt).",
        show_default=False,
    ),
]
OutFile = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Weight file to write, its entry going into the manifest.json beside it "
        "(default: the weights folder's file of this model, replaced only when named).",
        show_default=False,
    ),
]


def _data_dir(path: Path) -> Path:
    """``path``; or, for ``../shared/data/...`` (the defaults and the manifest's commands, which
    run from the checkout) not found from the working folder, the checkout's."""
    if path.is_dir() or path.parts[:3] != ("..", "shared", "data"):
        return path
    beside = (Path(__file__).resolve().parents[1] / path).resolve()
    return beside if beside.is_dir() else path


def _train_dirs(train: list[Path] | None, val: str) -> tuple[list[Path], list[Path]]:
    dirs = list(train) if train else [_DATA / "helen_train", _DATA / "lfpw_train"]
    dirs = [_data_dir(d) for d in dirs]
    vals = [_data_dir(Path(v)) for v in val.split(",") if v]
    for d in [*dirs, *vals]:
        if not d.is_dir():
            hint = (  # the defaults name the data beside a checkout; other folders are the user's
                " (the defaults are 300-W's folders beside a crct checkout: give yours)"
                if d.parts[:3] == ("..", "shared", "data")
                else ""
            )
            raise CrctError(f"{d}: no such data folder{hint}")
    return dirs, vals


Loss = Annotated[
    str,
    typer.Option(help="Landmark loss: wing (Wing loss, Feng et al. 2018) or l1.", metavar="NAME"),
]


Degradation = Annotated[
    float,
    typer.Option(help="Share of training faces degraded as crct degrade does (any kind)."),
]
Stack = Annotated[
    float,
    typer.Option(
        help="Chance that a degraded face gets one more degradation, again and again "
        "(blur + noise + darkening at once, as on hard footage)."
    ),
]


Shadow = Annotated[
    float,
    typer.Option(
        help="Share of training crops with a dark band across them at any angle (5-50% of "
        "the light left, as under a shadow or a dark strip): FLL learns to read through it.",
        min=0.0,
        max=1.0,
    ),
]


ShadowDark = Annotated[
    float,
    typer.Option(
        help="With --shadow: share of the bands left with only 5-15% of their light, as dark "
        "as the strip of hard footage, rather than 5-50%.",
        min=0.0,
        max=1.0,
    ),
]


SmallFace = Annotated[
    float,
    typer.Option(
        help="Share of training faces first brought down to a landmark box of 40-140 px "
        "(log-uniform), as faces in video are, before the degradations: the same blur or "
        "noise hides far more of a small face than of the photographs' 160-px one.",
        min=0.0,
        max=1.0,
    ),
]


MotionBlur = Annotated[
    float,
    typer.Option(
        help="Share of training faces smeared along a straight path of 2-60% of the face's "
        "side (log-uniform, any direction; the longest: --motion-blur-max), as a camera smears "
        "a face that moves fast, before the degradations.",
        min=0.0,
        max=1.0,
    ),
]


MotionBlurMax = Annotated[
    float,
    typer.Option(
        help="With --motion-blur: the longest smear, in the face's sides (the shortest is "
        "0.02). A face that crosses most of its width in one frame interval smears that far.",
        min=0.05,
        max=3.0,
    ),
]


Compression = Annotated[
    float,
    typer.Option(
        help="Share of training crops compressed last as one H.264 frame at a random quality "
        "(CRF 18-36), as every video is: a dim, noisy face loses its faint detail there first.",
        min=0.0,
        max=1.0,
    ),
]


ShapeWarp = Annotated[
    float,
    typer.Option(
        help="Share of training crops bent by a smooth random warp (a 4x4 grid of control "
        "points moved 3% of the crop, cubic between), the points moved with it: faces of "
        "other shapes than the training faces' own.",
        min=0.0,
        max=1.0,
    ),
]


def _check_degradation(degradation: float, stack: float) -> None:
    if not (0 <= degradation <= 1 and 0 <= stack < 1):
        raise CrctError("--degradation must be in [0, 1] and --stack in [0, 1)")


def _log_line(message: str) -> None:
    typer.echo(message, err=True)


def _train_common(cfg: Any, steps: int | None, out: Path | None, checkpoint: Path | None) -> None:
    """``--steps``, ``--out`` and ``--checkpoint`` into ``cfg``; without ``--out`` the file
    goes to the weights folder, where it may not replace one crct runs with."""
    if steps is not None:
        cfg.steps = steps
    if out is not None:
        cfg.out = out
    else:
        from crct_cli.models.weights import PACKAGED_WEIGHTS

        if Path(cfg.out).parent.resolve() == PACKAGED_WEIGHTS.resolve():
            raise CrctError(
                "this crct was installed from a wheel, whose weights are part of the package: "
                "give --out FILE.pt (or set CRCT_WEIGHTS to a folder of your own)"
            )
        if Path(cfg.out).exists():  # the files crct runs with: replaced only when named
            from crct_cli.train.run import display_path

            shown = display_path(Path(cfg.out))
            raise CrctError(
                f"{shown} is a weight file crct runs with: give --out {shown} to replace it "
                "(as its manifest's command does), or --out another file"
            )
    if checkpoint is not None:
        cfg.checkpoint = checkpoint
    _check_train_values(cfg, steps)
    _check_writable(Path(cfg.out), "--out")
    if getattr(cfg, "checkpoint", None) is not None:
        _check_writable(Path(cfg.checkpoint), "--checkpoint")
    from crct_cli.models import weights

    weights.read_manifest(Path(cfg.out).parent)  # the manifest the entry goes into: crct's


def _check_train_values(cfg: Any, steps: int | None) -> None:
    """Values a run would take and make nothing of (0 steps: untrained weights), or fail on
    after loading its data: refused before anything is read."""
    if steps is not None and steps < 1:
        raise CrctError(f"--steps must be 1 or more (none: the model's own), got {steps}")
    if getattr(cfg, "batch", 1) < 1:
        raise CrctError(f"--batch must be 1 or more, got {cfg.batch}")
    lr = getattr(cfg, "lr", 1.0)
    if not (math.isfinite(lr) and lr > 0):
        raise CrctError(f"--lr must be a positive number, got {lr}")
    if getattr(cfg, "val_limit", 0) < 0:
        raise CrctError(f"--val-limit must be 0 (every face) or more, got {cfg.val_limit}")


def _check_writable(path: Path, flag: str) -> None:
    """A file a run writes at its end (the weights) or as it goes (a checkpoint): said before
    an hour of training, not after it. Its folder is made here."""
    if path.is_dir():
        raise CrctError(f"{flag} {path}: a folder; give the file to write (FILE.pt)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrctError(f"{flag} {path}: cannot create {path.parent} ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CrctError(f"{flag} {path}: folder {path.parent} is not writable")


def _train_device(device: str) -> str:
    """``cpu`` or ``cuda[:N]``, checked before any data is read."""
    import torch

    if device != "cpu" and not device.startswith("cuda"):
        raise CrctError(f"--device {device}: expected cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CrctError(f"--device {device}: this torch sees no CUDA GPU")
    return device


@train_app.command("fll")
def train_fll(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    steps: Steps = None,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine).")] = 2e-3,
    stage: Annotated[
        int,
        typer.Option(
            help="1: FLL on the face box (fll.pt). 2: the second stage on eye-levelled crops "
            "around the first estimate (fll_stage2.pt).",
            min=1,
            max=2,
        ),
    ] = 1,
    init: Annotated[
        Path | None,
        typer.Option(
            help="FLL weights to start from (default for --stage 2: --first).",
            metavar="PT",
            show_default=False,
        ),
    ] = None,
    first: Annotated[
        Path | None,
        typer.Option(
            help="--stage 2: the first stage it is validated behind (default: weights/fll.pt).",
            metavar="PT",
            show_default=False,
        ),
    ] = None,
    from_scratch: Annotated[
        bool,
        typer.Option(
            "--from-scratch",
            help="Start from random weights, --stage 2 too (which otherwise starts from --first).",
        ),
    ] = False,
    loss: Loss = "wing",
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Add the shape-indexed head: per-point corrections from the trunk's finer "
            "feature maps around the global estimate.",
        ),
    ] = False,
    local_steps: Annotated[
        int,
        typer.Option(
            help="With --local: shape-indexed heads run in turn, each after the first "
            "sampling half as far around the points the one before placed.",
            min=1,
            max=3,
        ),
    ] = 1,
    heatmap: Annotated[
        bool,
        typer.Option(
            "--heatmap",
            help="Add the heatmap head: 68 heatmaps on the trunk's stride-4 map, read by "
            "soft-argmax and blended point by point with the regression's answer.",
        ),
    ] = False,
    freeze_global: Annotated[
        bool,
        typer.Option(
            "--freeze-global",
            help="With --local and --init: train the head alone; the global estimate stays "
            "exactly that of --init.",
        ),
    ] = False,
    input_size: Annotated[
        int,
        typer.Option(
            help="Side of FLL's crop in pixels. The trunk and heads do not depend on it, so "
            "--init may come from another size (a finer crop for the second stage).",
            min=32,
        ),
    ] = 112,
    max_face: Annotated[
        float,
        typer.Option(
            help="Photographs are read downscaled so that the landmark box is at most this "
            "side, in pixels (a smaller one travels lighter; FLL's crop holds ~85 px of box).",
            min=32.0,
        ),
    ] = 160.0,
    label_origin: Annotated[
        float | None,
        typer.Option(
            help="The coordinate the .pts files give the first pixel's centre (1 for 300-W, "
            "which counts pixels from 1). FLL then learns true pixel centres, mirrored crops "
            "included, and answers counting from 0 as OpenCV and dlib do. Unset: the points as "
            "read (mirroring then teaches x counted from 0 and y from the files' origin).",
            show_default=False,
        ),
    ] = None,
    degradation: Degradation = 0.25,
    stack: Stack = 0.0,
    shadow: Shadow = 0.0,
    shadow_dark: ShadowDark = 0.0,
    small_face: SmallFace = 0.0,
    motion_blur: MotionBlur = 0.0,
    motion_blur_max: MotionBlurMax = 0.6,  # AugmentConfig.motion_blur_len[1]; a test keeps them one
    compression: Compression = 0.0,
    shape_warp: ShapeWarp = 0.0,
    seed: Seed = 0,
    out: OutFile = None,
    checkpoint: Checkpoint = None,
    resume: Resume = False,
    device: Annotated[
        str,
        typer.Option(help="Where the training steps run: cpu, or cuda for a GPU.", metavar="DEV"),
    ] = "cpu",
    workers: Annotated[
        int,
        typer.Option(
            help="Processes that build the batches (0: one thread beside the steps). The same "
            "batches either way; a GPU needs several to be kept busy.",
            min=0,
        ),
    ] = 0,
    minutes: Annotated[
        float | None,
        typer.Option(
            help="Fit the run to this much training time: --steps becomes an upper bound, the "
            "steps that fit are set from the speed of steps 20-100, and the recorded command "
            "names them (it reproduces the run without a clock).",
            min=0.1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train FLL, the landmark localiser, with the papers' augmentation."""
    from crct_cli.train.data import AugmentConfig
    from crct_cli.train.fll import TrainFLLConfig, train_fll

    _check_degradation(degradation, stack)
    if shadow_dark and not shadow:
        raise CrctError("--shadow-dark needs --shadow (the share of crops with a band)")
    smear = (AugmentConfig.motion_blur_len[0], motion_blur_max)
    if smear != AugmentConfig.motion_blur_len and not motion_blur:
        raise CrctError("--motion-blur-max needs --motion-blur (the share of smeared faces)")
    dirs, vals = _train_dirs(train, val)
    cfg = TrainFLLConfig(
        train=dirs,
        val=vals,
        batch=batch,
        lr=lr,
        seed=seed,
        resume=resume,
        stage=stage,
        init=init,
        first=first,
        from_scratch=from_scratch,
        loss=loss,
        local=local,
        local_steps=local_steps,
        heatmap=heatmap,
        freeze_global=freeze_global,
        input_size=input_size,
        max_face=max_face,
        label_origin=label_origin,
        device=_train_device(device),
        workers=workers,
        minutes=minutes,
        augment=AugmentConfig(
            degradation=degradation,
            stack=stack,
            shadow=shadow,
            shadow_dark=shadow_dark,
            small_face=small_face,
            motion_blur=motion_blur,
            motion_blur_len=smear,
            compression=compression,
            shape_warp=shape_warp,
        ),
    )
    _train_common(cfg, steps, out, checkpoint)
    train_fll(cfg, log=_log_line)


#: ``crct train fv|bt|finder --label-origin``: their points only place boxes and shapes, in
#: the convention ``crct train fll --label-origin`` gives FLL.
LabelOrigin = Annotated[
    float | None,
    typer.Option(
        help="The coordinate the .pts files give the first pixel's centre (1 for 300-W), taken "
        "off before training, as crct train fll --label-origin. Unset: the points as read.",
        show_default=False,
    ),
]


@train_app.command("fv")
def train_fv(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    steps: Steps = None,
    batch: Annotated[int, typer.Option(help="Candidate shapes per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine).")] = 2e-3,
    degradation: Degradation = 0.25,
    stack: Stack = 0.0,
    fll_answers: Annotated[
        float,
        typer.Option(
            help="Share of each batch made of what FV is asked at run time: FLL's answers "
            "(the shipped localiser, both stages) in boxes shifted off the face, labelled by "
            "their error. 0: true and displaced shapes only (the papers').",
            min=0.0,
            max=1.0,
            metavar="SHARE",
        ),
    ] = 0.0,
    compression: Compression = 0.0,
    label_origin: LabelOrigin = None,
    seed: Seed = 0,
    out: OutFile = None,
    checkpoint: Checkpoint = None,
    resume: Resume = False,
) -> None:
    """Train FV, the face validator, on true and displaced shapes."""
    from crct_cli.train.data import AugmentConfig
    from crct_cli.train.fv import TrainFVConfig, train_fv

    _check_degradation(degradation, stack)
    dirs, vals = _train_dirs(train, val)
    augment = AugmentConfig(
        shift_std=0.1, degradation=degradation, stack=stack, compression=compression
    )
    cfg = TrainFVConfig(
        train=dirs,
        val=vals,
        batch=batch,
        lr=lr,
        seed=seed,
        resume=resume,
        augment=augment,
        fll_answers=fll_answers,
        label_origin=label_origin,
    )
    _train_common(cfg, steps, out, checkpoint)
    train_fv(cfg, log=_log_line)


@train_app.command("finder")
def train_finder(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    steps: Steps = None,
    batch: Annotated[int, typer.Option(help="Windows per step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine).")] = 2e-3,
    label_origin: LabelOrigin = None,
    seed: Seed = 0,
    out: OutFile = None,
    checkpoint: Checkpoint = None,
    resume: Resume = False,
) -> None:
    """Train the face finder: where a lost face went, near the box it was last seen in."""
    from crct_cli.train.finder import TrainFinderConfig, train_finder

    dirs, vals = _train_dirs(train, val)
    cfg = TrainFinderConfig(
        train=dirs,
        val=vals,
        batch=batch,
        lr=lr,
        seed=seed,
        resume=resume,
        label_origin=label_origin,
    )
    _train_common(cfg, steps, out, checkpoint)
    train_finder(cfg, log=_log_line)


@train_app.command("bt")
def train_bt(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    steps: Steps = None,
    crops_per_step: Annotated[int, typer.Option(help="Sequences x unroll length per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine).")] = 1e-3,
    seed: Seed = 0,
    init: Annotated[
        Path | None,
        typer.Option(
            help="FLL weights whose trunk BT starts from (CRCT III-E), or BT weights to go on "
            "training from (all of them: a fine-tune).",
            metavar="PT",
        ),
    ] = Path("weights/fll.pt"),
    input_size: Annotated[
        int,
        typer.Option(
            help="Side of BT's two crops in pixels (CRCT: 128). BT only moves the box that FLL "
            "then refines, and 64 px cost a third of 128 on a CPU.",
            min=32,
        ),
    ] = 128,
    degradation: Degradation = 0.25,
    stack: Stack = 0.0,
    motion_blur: Annotated[
        float,
        typer.Option(
            help="Share of training sequences filmed with the shutter open over 0.3-1 of each "
            "frame interval: a fast face is smeared along its path, as on real video.",
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
    fast_motion: Annotated[
        float,
        typer.Option(
            help="Share of training sequences that move in bursts of 2-4 steps of their random "
            "walk per frame, 2-8 frames at a time: a quickly turned head or a shaken camera.",
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
    label_origin: LabelOrigin = None,
    out: OutFile = None,
    checkpoint: Checkpoint = None,
    resume: Resume = False,
) -> None:
    """Train BT, the recurrent tracker, on sequences synthesised from still faces."""
    from crct_cli.models.bt import BTConfig
    from crct_cli.train.bt import BT_AUGMENT, TrainBTConfig, train_bt

    _check_degradation(degradation, stack)
    dirs, vals = _train_dirs(train, val)
    cfg = TrainBTConfig(
        train=dirs,
        val=vals,
        crops_per_step=crops_per_step,
        lr=lr,
        seed=seed,
        init=init,
        resume=resume,
        model=BTConfig(input_size=input_size),
        augment=dataclasses.replace(BT_AUGMENT, degradation=degradation, stack=stack),
        motion_blur=motion_blur,
        fast_motion=fast_motion,
        label_origin=label_origin,
    )
    _train_common(cfg, steps, out, checkpoint)
    train_bt(cfg, log=_log_line)


@train_app.command("int8")
def train_int8(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    faces: Annotated[
        int, typer.Option(help="Training faces sampled (two crops per network each).", min=1)
    ] = 192,
    seed: Annotated[int, typer.Option(help="Seed: which faces are sampled.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The ranges file, beside the bt.pt and fll.pt it is for (crct looks there; "
            "default: int8.json in the weights folder, replaced only when named).",
            metavar="JSON",
            show_default=False,
        ),
    ] = None,
    operators: Annotated[
        str,
        typer.Option(
            help="Operators quantized, comma-separated: Conv, Relu (a ReLU then takes its "
            "convolution's uint8 output as it is). 'Conv' alone: the float32 ReLUs of before.",
            metavar="OPS",
        ),
    ] = "Conv,Relu",
) -> None:
    """Measure the activation ranges of BT's and FLL's int8 graphs (crct track on the CPU)."""
    from crct_cli.runtime.int8 import KNOWN_OPS
    from crct_cli.train.int8 import TrainInt8Config, train_int8

    ops = tuple(op.strip() for op in operators.split(",") if op.strip())
    if "Conv" not in ops or not set(ops) <= set(KNOWN_OPS):
        raise CrctError(
            f"--operators {operators!r}: give Conv, optionally with Relu (known: "
            f"{', '.join(KNOWN_OPS)})"
        )
    from crct_cli.models import weights

    if out is None:  # as every crct train: the file crct runs with is replaced when named
        out = weights.WEIGHTS_DIR / "int8.json"
        if out.exists():
            from crct_cli.train.run import display_path

            raise CrctError(
                f"{display_path(out)} is the file crct runs with: give --out "
                f"{display_path(out)} to replace it (as its manifest's command does), or "
                "--out FILE.json beside a bt.pt and fll.pt of your own"
            )
    dirs, vals = _train_dirs(train, val)
    for name in ("bt.pt", "fll.pt"):
        if not (out.parent / name).is_file():
            raise CrctError(
                f"{out.parent / name}: no such weight file (--out goes beside the bt.pt and "
                f"fll.pt it is for; the weights folder: {weights.WEIGHTS_DIR})"
            )
    _check_writable(out, "--out")
    weights.read_manifest(out.parent)
    cfg = TrainInt8Config(dirs, vals, faces=faces, seed=seed, out=out, operators=ops)
    train_int8(cfg, log=_log_line)


@train_app.command("face3d")
def train_face3d(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    out: Annotated[
        Path | None,
        typer.Option(
            help="The model file (default: weights/face3d.json, beside the networks, where "
            "crct looks; replaced only when named).",
            metavar="JSON",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Learn the rigid 3D face behind crct track --pose from the training markup (seconds)."""
    from crct_cli.train.face3d import TrainFace3DConfig, train_face3d

    dirs, vals = _train_dirs(train, val)
    cfg = TrainFace3DConfig(dirs, vals)
    _train_common(cfg, None, out, None)
    train_face3d(cfg, log=_log_line)


Variant = Annotated[
    str,
    typer.Option(
        help="FADeNN's IID: d (one DAE), s (classifier + a DAE per noise type), m (multi-task "
        "classifier + DAEs).",
        metavar="d|s|m",
    ),
]
ValLimit = Annotated[
    int, typer.Option(help="Validate on the first N validation faces only (0: all).")
]


def _check_variant(variant: str) -> None:
    from crct_cli.models.fadenn import VARIANTS

    if variant not in VARIANTS:
        raise CrctError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")


@train_app.command("iid")
def train_iid(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    variant: Variant = "m",
    steps: Steps = None,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, cosine).")] = 1e-3,
    seed: Seed = 0,
    val_limit: ValLimit = 0,
    daes: Annotated[
        Path | None,
        typer.Option(
            help="s or m: take the specialised DAEs from this trained IID and train only the "
            "noise classifier.",
            metavar="PT",
            show_default=False,
        ),
    ] = None,
    compression: Compression = 0.0,
    tone: Annotated[
        float,
        typer.Option(
            help="Share of faces given another contrast (x0.6-1.2) and brightness (x0.75-1.25) "
            "before they are degraded, clean ones too: a flat or dim face is not a scaled one.",
            min=0.0,
            max=1.0,
        ),
    ] = 0.0,
    out: OutFile = None,
    checkpoint: Checkpoint = None,
    resume: Resume = False,
) -> None:
    """Train FADeNN's internal image denoiser on crops degraded as crct degrade does."""
    from crct_cli.train.iid import TrainIIDConfig, train_iid

    _check_variant(variant)
    dirs, vals = _train_dirs(train, val)
    cfg = TrainIIDConfig(
        train=dirs,
        val=vals,
        variant=variant,
        batch=batch,
        lr=lr,
        seed=seed,
        val_limit=val_limit,
        daes=daes,
        compression=compression,
        tone=tone,
        resume=resume,
    )
    _train_common(cfg, steps, out, checkpoint)
    train_iid(cfg, log=_log_line)


@train_app.command("fadenn")
def train_fadenn(
    train: TrainDirs = None,
    val: ValDirs = str(_DATA / "afw"),
    variant: Variant = "m",
    fll: Annotated[
        Path, typer.Option(help="Trained FLL to start from (crct train fll).", metavar="PT")
    ] = Path("weights/fll.pt"),
    iid: Annotated[
        Path | None,
        typer.Option(
            help="Trained IID of the same variant (crct train iid; default weights/iid_<v>.pt).",
            metavar="PT",
            show_default=False,
        ),
    ] = None,
    steps: Steps = None,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Peak learning rate (Adam, the paper's 1e-4).")] = 1e-4,
    rec_weight: Annotated[
        float, typer.Option(help="Weight of the denoiser's L2 reconstruction loss.")
    ] = 10.0,
    loss: Loss = "wing",
    seed: Seed = 0,
    degrade_seed: Annotated[
        int, typer.Option(help="Noise seed of the validation sets (as crct degrade --seed).")
    ] = 0,
    untouched: Annotated[
        list[str] | None,
        typer.Option(
            help="s or m: a noise class whose verdict leaves the crop as it is, like clean "
            "(repeat for several). scale suits FLL, which standardises each crop.",
            metavar="CLASS",
            show_default=False,
        ),
    ] = None,
    label_origin: Annotated[
        float | None,
        typer.Option(
            help="The coordinate the .pts files give the first pixel's centre (1 for 300-W), "
            "as crct train fll --label-origin: give the value the FLL of --fll was trained "
            "with. Unset: the points as read.",
            show_default=False,
        ),
    ] = None,
    val_limit: ValLimit = 0,
    out: OutFile = None,
    checkpoint: Checkpoint = None,
    resume: Resume = False,
) -> None:
    """Fine-tune FADeNN = FLL(IID(I)) end to end (paper III-D): weights/fadenn_<v>.pt."""
    from crct_cli.train.fadenn import TrainFADeNNConfig, train_fadenn

    _check_variant(variant)
    dirs, vals = _train_dirs(train, val)
    cfg = TrainFADeNNConfig(
        train=dirs,
        val=vals,
        variant=variant,
        fll=fll,
        iid=iid,
        batch=batch,
        lr=lr,
        rec_weight=rec_weight,
        loss=loss,
        seed=seed,
        degrade_seed=degrade_seed,
        untouched=tuple(untouched or ()),
        label_origin=label_origin,
        val_limit=val_limit,
        resume=resume,
    )
    _train_common(cfg, steps, out, checkpoint)
    train_fadenn(cfg, log=_log_line)
