"""``specllama``: entry point, error policy and command registration.

Errors a user can cause end as one ``specllama: error: ...`` line on stderr and a non-zero exit
(2 for bad input, 130 for Ctrl-C); only the model's text ever goes to stdout.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import SpecllamaError


class Group(click.Group):
    """A click group whose errors are one line each."""

    def main(self, args=None, prog_name=None, **extra):  # noqa: D401
        try:
            rv = super().main(args=args, prog_name=prog_name or "specllama", standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            fail("interrupted", 130)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except SpecllamaError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:
            # the reader went away (e.g. `| head`): not an error of ours
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:
                pass
            sys.exit(0)
        except Exception as exc:  # a bug: say so in one line unless asked for the traceback
            if os.environ.get("SPECLLAMA_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set SPECLLAMA_DEBUG=1 for a traceback)", 1)
        if isinstance(rv, int):
            sys.exit(rv)
        sys.exit(0)


def fail(message: str, code: int = 2) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    sys.stderr.write(f"specllama: error: {first}\n")
    sys.stderr.flush()
    sys.exit(code)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="specllama", prog_name="specllama")
def cli() -> None:
    """Long prompts made cheap: a small draft model decides what the big target reads."""


def _register() -> None:
    from . import compress, models, run

    cli.add_command(run.run)
    cli.add_command(compress.compress)
    cli.add_command(models.models)
    for mod in ("chat", "eval", "bench", "serve"):
        try:
            m = __import__(f"specllama.cli.{mod}", fromlist=[mod])
        except ModuleNotFoundError as exc:
            if exc.name != f"specllama.cli.{mod}":
                raise
            continue
        cli.add_command(getattr(m, mod if mod != "eval" else "eval_cmd"))


_register()


def main() -> None:
    cli.main()


if __name__ == "__main__":  # pragma: no cover
    main()
