"""The `eventtracking catalog` command: documentation of every event type, and drift."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from ..catalog import build_catalogue, render_html, render_json_schema, render_markdown
from ..config import load_tracker
from ..exceptions import ImproperlyConfigured, StoreError
from ..registry import Registry, load_catalogue
from ..registry.model import Kind
from ..store import open_store
from ..track import get_tracker

RENDERERS = {"html": render_html, "markdown": render_markdown, "json-schema": render_json_schema}


@click.command("catalog")
@click.option("--store", "store_path", metavar="PATH", help="Also read what this store holds.")
@click.option(
    "--catalogue",
    "catalogues",
    multiple=True,
    metavar="FILE",
    help="A TOML catalogue file of event and context types (repeatable).",
)
@click.option(
    "--module",
    "modules",
    multiple=True,
    metavar="NAME",
    help="Import this module first; types it registers on the default tracker count.",
)
@click.option("--config", "config_path", metavar="FILE", help="A tracker TOML configuration.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(sorted(RENDERERS)),
    default="markdown",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE", help="Write here instead of standard output.")
@click.option("--check", is_flag=True, help="Exit with status 1 when there is drift (for CI).")
def catalog_command(
    store_path: str | None,
    catalogues: tuple[str, ...],
    modules: tuple[str, ...],
    config_path: str | None,
    fmt: str,
    output: str | None,
    check: bool,
) -> None:
    """Render the event catalogue from registered types and, with --store, stored events.

    Without --catalogue, --module or --config the store's own documentation
    versions are used. Drift: names stored but never registered, fields
    stored but undocumented, documented fields never seen.
    """
    registry = _registry(catalogues, modules, config_path)
    if registry is None and store_path is None:
        raise click.UsageError("give --store, --catalogue, --module or --config")
    store = None
    if store_path is not None:
        try:
            store = open_store(store_path)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    try:
        catalogue = build_catalogue(registry, store)  # type: ignore[arg-type]
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if store is not None:
            store.close()
    text = RENDERERS[fmt](catalogue)
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"{output}: cannot write: {exc}") from None
    else:
        click.echo(text)
    if check and catalogue.has_drift:
        drift = catalogue.drift
        click.echo(
            f"drift: {len(drift['unregistered'])} unregistered name(s), "
            f"{sum(map(len, drift['undocumented_fields'].values()))} undocumented field(s), "
            f"{sum(map(len, drift['unseen_fields'].values()))} documented field(s) never seen",
            err=True,
        )
        sys.exit(1)


def _registry(
    catalogues: tuple[str, ...], modules: tuple[str, ...], config_path: str | None
) -> Registry | None:
    if not (catalogues or modules or config_path):
        return None
    registry = Registry()
    try:
        if config_path:
            registry = load_tracker(config_path).registry
        for name in modules:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise click.ClickException(f"--module {name}: cannot import: {exc}") from None
        if modules:
            kinds: tuple[Kind, Kind] = ("event", "context")
            for kind in kinds:
                for version in get_tracker().registry.types(kind):
                    for older in get_tracker().registry.versions(version.name, version.kind):
                        registry.add(older)
                    registry.add(version)
        for file in catalogues:
            load_catalogue(file, registry)
    except ImproperlyConfigured as exc:
        raise click.ClickException(str(exc)) from None
    return registry
