"""The ``crct`` command line. Typer only: parse the arguments, call a module, print the result.

Every error meant for the user (:class:`CrctError`, a usage error, an OS error while writing)
ends as ONE line ``crct: error: ...`` on stderr with exit code 2 and no traceback; Ctrl-C exits
with 130. That handling lives in :class:`CrctGroup`, so every subcommand gets it.
"""

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from crct_cli import __version__
from crct_cli.errors import CrctError

#: Click's base exception, found through Typer's public ``BadParameter`` so this works with both
#: the vendored and the standalone Click.
_ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _error_line(message: str) -> None:
    """Print ``crct: error: message`` as a single line on stderr."""
    typer.echo(f"crct: error: {' '.join(str(message).split())}", err=True)


def _usage_message(exc: Exception) -> str:
    message = str(getattr(exc, "format_message", lambda: str(exc))())
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


class CrctGroup(TyperGroup):
    """Turns bad input into one line and an exit code instead of a panel or a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CrctError as exc:
            _error_line(str(exc))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            typer.echo("crct: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            raise  # the reader went away (``crct ... | head``): Typer exits quietly
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
            if type(exc).__name__ == "NoArgsIsHelpError":  # plain ``crct``: Typer showed the help
                code = 0
            else:
                _error_line(_usage_message(exc))
                code = getattr(exc, "exit_code", EXIT_BAD_INPUT)
        except typer.Abort:
            typer.echo("crct: aborted", err=True)
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


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


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Robust 68-point facial landmark tracking in video (CRCT tracker, FADeNN aligner)."""


def _not_yet(command: str, lands: str) -> NoReturn:
    typer.echo(f"crct {command}: not available yet ({lands})", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


@app.command()
def track(
    path: Annotated[Path, typer.Argument(help="Video to track.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
    overlay: Annotated[bool, typer.Option(help="Also write an overlay video.")] = False,
) -> None:
    """Track 68 landmarks through a video (not available yet)."""
    _not_yet("track", "the tracker lands with issue 3")


@app.command()
def align(
    path: Annotated[Path, typer.Argument(help="Image or folder of images.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
) -> None:
    """Find 68 landmarks in still images (not available yet)."""
    _not_yet("align", "the aligner lands with a later issue")


@app.command()
def denoise(
    path: Annotated[Path, typer.Argument(help="Image or folder of images.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder.")] = None,
) -> None:
    """Classify and remove image degradations with FADeNN (not available yet)."""
    _not_yet("denoise", "FADeNN's denoiser lands with a later issue")


@app.command()
def degrade(
    paths: Annotated[
        list[Path], typer.Argument(help="Images, videos or folders (recursive).", metavar="PATH")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder.", metavar="DIR", show_default=False)
    ],
    noise_type: Annotated[
        str | None,
        typer.Option("--type", "-t", help="downsample | blur | noise | scale.", show_default=False),
    ] = None,
    level: Annotated[
        int | None,
        typer.Option("--level", "-l", help="0 (unchanged), 1, 2 or 3.", show_default=False),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for reproducible Gaussian noise.", show_default=False)
    ] = None,
    all_sets: Annotated[
        bool,
        typer.Option(
            "--all", help="Write clean/ and every <type>/<level>/ set (300W-Test-N style)."
        ),
    ] = False,
) -> None:
    """Degrade images, folders or videos with FADeNN's four noise types and levels."""
    from rich.console import Console
    from rich.progress import track as progress

    from crct_cli.degrade import plan_degrade

    plan = plan_degrade(paths, out, noise_type, level, all_sets=all_sets, seed=seed)
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    steps = plan.run()
    bar = progress(steps, "degrading", total=len(plan), console=console, transient=True)
    for _ in bar if console.is_terminal else steps:
        pass
    counts = (
        f"{plan.count('image')} image(s), {plan.count('video')} video(s), "
        f"{plan.count('copy')} copied file(s)"
    )
    where = f"{len(plan.variants)} sets under " if all_sets else ""
    layout = " (clean/ and <type>/<level>/)" if all_sets else ""
    console.print(f"degraded {counts} into {where}{plan.out_dir}{layout}, seed {plan.seed}")
    if plan.skipped:
        console.print(f"skipped {len(plan.skipped)} file(s) that are not images, videos or .pts")


@app.command()
def benchmark(
    pred: Annotated[
        Path | None,
        typer.Option(help="Folder of predicted .pts files.", metavar="DIR", show_default=False),
    ] = None,
    gt: Annotated[
        Path | None,
        typer.Option(help="Folder of ground-truth .pts files.", metavar="DIR", show_default=False),
    ] = None,
    norm: Annotated[
        str, typer.Option(help="NME normalisation: diagonal | area | interocular.")
    ] = "diagonal",
    threshold: Annotated[float, typer.Option(help="AUC cut-off and failure threshold.")] = 0.08,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write results.json and per_file.csv here.", metavar="DIR", show_default=False
        ),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Benchmark a dataset (lands with issue 5).", hidden=True)
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Dataset root (lands with issue 5).", hidden=True)
    ] = None,
    methods: Annotated[
        str | None, typer.Option(help="Methods to compare (lands with issue 5).", hidden=True)
    ] = None,
    speed: Annotated[
        bool, typer.Option(help="Measure speed (lands with issue 5).", hidden=True)
    ] = False,
) -> None:
    """Score predicted .pts files against ground truth: NME, AUC@0.08, failure rate."""
    later = {"--dataset": dataset, "--root": root, "--methods": methods, "--speed": speed or None}
    given = [name for name, value in later.items() if value is not None]
    if given:
        raise CrctError(f"benchmark {', '.join(given)}: not available yet (lands with issue 5)")
    if pred is None or gt is None:
        raise CrctError("give both --pred DIR and --gt DIR")

    from rich.console import Console

    from crct_cli.bench.pts_compare import compare_pts_folders, results_tables, write_results

    result = compare_pts_folders(pred, gt, norm, threshold)  # type: ignore[arg-type]
    console = Console()
    for table in results_tables(result):
        console.print(table)
    if out is not None:
        for path in write_results(result, out):
            Console(stderr=True).print(f"wrote {path}", highlight=False)


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Training data folder.")],
) -> None:
    """Train the tracker and aligner models (not available yet)."""
    _not_yet("train", "training lands with a later issue")
