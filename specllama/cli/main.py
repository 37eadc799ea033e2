"""``specllama``: entry point, error policy and command registration.

Errors a user can cause end as one ``specllama: error: ...`` line on stderr and a non-zero exit
(2 for bad input, 130 for Ctrl-C); only the model's text ever goes to stdout. A command run with
``--json`` also prints the error on stdout as one JSON object, ``{"error": {"type": ..., "message":
...}}``, so a script reading stdout always gets JSON.
"""

from __future__ import annotations

import json
import os
import sys

import click

from ..errors import SpecllamaError


class Group(click.Group):
    """A click group whose errors are one line each."""

    def main(self, args=None, prog_name=None, **extra):  # noqa: D401
        argv = list(sys.argv[1:] if args is None else args)
        try:
            from ..engine.lib import catch_swallowed_interrupts

            catch_swallowed_interrupts()  # Ctrl-C while llama.cpp runs a callback: exit 130, no traceback
            rv = super().main(args=argv, prog_name=prog_name or "specllama", standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.Abort:
            fail("interrupted", 130, _json_kind(argv, "Interrupted"))
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code, _json_kind(argv, type(exc).__name__))
        except SpecllamaError as exc:
            fail(str(exc), exc.exit_code, _json_kind(argv, type(exc).__name__))
        except KeyboardInterrupt:
            fail("interrupted", 130, _json_kind(argv, "Interrupted"))
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
            fail(f"internal error: {type(exc).__name__}: {exc} (set SPECLLAMA_DEBUG=1 for a traceback)", 1,
                 _json_kind(argv, "InternalError"))
        if isinstance(rv, int):
            sys.exit(rv)
        sys.exit(0)


def json_requested(args: list[str]) -> bool:
    """True when ``args`` run a command with ``--json`` set, parsed as click parses them (values
    included: ``-p --json`` is a prompt) but ignoring every error, so a bad command line that asks
    for JSON still gets it."""
    name = next((a for a in args if not a.startswith("-")), None)
    cmd = cli.commands.get(name) if name else None
    if cmd is None or not any(p.name == "as_json" for p in cmd.params):
        return False
    rest = args[args.index(name) + 1:]
    try:
        ctx = cmd.make_context(name, rest, resilient_parsing=True, ignore_unknown_options=True)
    except Exception:  # whatever the parser makes of it, fall back to text
        return False
    return bool(ctx.params.get("as_json"))


def _json_kind(args: list[str], kind: str) -> str | None:
    """``kind`` when the command asked for ``--json`` (so the error also goes to stdout as JSON)."""
    return kind if json_requested(args) else None


def fail(message: str, code: int = 2, json_type: str | None = None) -> None:
    """One ``specllama: error:`` line on stderr (and, with ``json_type``, one JSON error object on
    stdout), then exit with ``code``."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    if json_type is not None:
        # invalid UTF-8 from the command line (lone surrogates) is written escaped, not lost
        text = first.encode("utf-8", "backslashreplace").decode("utf-8")
        try:
            sys.stdout.write(json.dumps({"error": {"type": json_type, "message": text}}, ensure_ascii=False)
                             + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):  # stdout closed or gone: the stderr line still says it
            pass
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
