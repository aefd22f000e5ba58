"""The ``labelloop`` command: a thin face over the Python API.

Exit codes: 0 success; 1 unexpected failure (a bug: please report it);
2 bad input, configuration or model (message says what to fix);
3 Label Studio unreachable or refused the request; 4 another ``labelloop sync`` holds the
campaign's lock (this run did nothing; try again later); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys

import typer

from ..errors import LabelloopError

app = typer.Typer(
    name="labelloop",
    help="Active learning for text classification: embed once, train a small head, and send people the texts "
    "whose labels move the model most (simulated, or through Label Studio).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",  # reflow docstring paragraphs to the terminal width
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"labelloop {version('labelloop')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version.", metavar=""
    ),
) -> None:
    """Active learning for text classification, wired to Label Studio."""


def _one_line_warnings() -> None:
    """labelloop's own warnings (a damaged cache shard dropped, copies with different labels) as one
    ``warning:`` line each, not Python's format with a source line. Only the command line does this: the
    process is ours there; the library leaves a caller's warning settings alone."""
    import warnings

    from rich.console import Console

    from ..errors import LabelloopWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if issubclass(category, LabelloopWarning):
            Console(stderr=True).print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main() -> None:
    """Console entry point: run the app, turning known errors into one line and an exit code."""
    import click
    from rich.console import Console

    # typer ≥ 0.26 raises its own vendored click's exceptions, older typer raises click's.
    usage_errors = (
        click.ClickException,
        *([typer.TyperException] if hasattr(typer, "TyperException") else []),
    )
    from .embed import optional_ray_address

    sys.argv[1:] = optional_ray_address(sys.argv[1:])
    _one_line_warnings()
    try:
        code = app(standalone_mode=False)  # returns 130 on Ctrl-C instead of raising
    except LabelloopError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except usage_errors as exc:  # bad options: click's message and usage line, exit 2
        if hasattr(exc, "show"):
            exc.show()
        else:
            Console(stderr=True).print(f"error: {exc}", highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    if code == 130:
        Console(stderr=True).print("interrupted; finished work is kept (caches are written atomically)")
    sys.exit(code if isinstance(code, int) else 0)


from . import embed as _embed  # noqa: E402,F401
from . import labelstudio as _labelstudio  # noqa: E402,F401  (registers commands)
from . import serve as _serve  # noqa: E402,F401
from . import simulate as _simulate  # noqa: E402,F401
from . import suspects as _suspects  # noqa: E402,F401
from . import sync as _sync  # noqa: E402,F401
