"""`promptkit import-images`: bring images made by other tools into the library, settings and all."""

from __future__ import annotations

import sys

import click

from .options import emit, json_option, lazy_module, open_library, quiet_option

service = lazy_module("promptkit.service.importing")


class _Bar:
    """Files done / total on a terminal (tqdm), nothing otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.show, self.bar = not quiet and sys.stderr.isatty(), None
        self.done = self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.show and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc="importing", file=sys.stderr)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_lines(data: dict) -> list[str]:
    """The per-tool table, then one line per file that failed."""
    from ..importers import TOOL_NAMES

    status = "would_import" if data["dry_run"] else "imported"
    head = "would import" if data["dry_run"] else "imported"
    lines = [f"{'tool':<16}{head:>13}{'duplicate':>11}{'failed':>8}"]
    for tool, row in sorted(data["by_tool"].items(), key=lambda kv: (kv[0] == "unreadable", kv[0])):
        lines.append(f"{TOOL_NAMES.get(tool, tool):<16}{row[status]:>13}{row['duplicate']:>11}{row['failed']:>8}")
    counts = data["counts"]
    lines.append(f"{'total':<16}{counts[status]:>13}{counts['duplicate']:>11}{counts['failed']:>8}")
    for outcome in data["files"]:
        if outcome["status"] == "failed":
            lines.append(f"skipped {outcome['file']}: {outcome['message']}")
    return lines


@click.command("import-images")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Look into the sub-folders of each folder given.")
@click.option("--dry-run", is_flag=True, help="Read every image and report; write nothing.")
@click.option("--verbose", "-v", is_flag=True, help="Also list what could not be read for certain, per image.")
@quiet_option
@json_option
@click.pass_context
def import_images(ctx, paths: tuple[str, ...], recursive: bool, dry_run: bool, verbose: bool, quiet: bool,
                  as_json: bool) -> None:
    """Import images made by AUTOMATIC1111, Forge, SD.Next, Civitai, ComfyUI, InvokeAI, Fooocus,
    SwarmUI, NovelAI (or another promptkit library): PNG, JPEG or WebP, files or folders.

    Each image is stored (content-addressed) as a generation of its prompt with every setting its
    metadata gives, the tool it came from and the metadata verbatim. Running it again adds nothing
    twice; a file that cannot be read is one line in the summary and the run goes on. The exit
    status is 1 only when no file could be read at all.
    `promptkit reproduce ID` re-runs an imported image when its model is available locally.
    """
    with open_library(ctx) as lib, _Bar(quiet or as_json) as bar:
        try:
            report = service.import_images(lib, list(paths), recursive=recursive, dry_run=dry_run, progress=bar)
        except KeyboardInterrupt:
            click.echo(f"\nstopped after {bar.done} of {bar.total or '?'} files; run the same command again to "
                       "finish (nothing is imported twice)", err=True)
            sys.exit(130)
    data = report.to_dict()
    files = data["files"]
    nothing_read = bool(files) and all(outcome["status"] == "failed" for outcome in files)
    if nothing_read and len(files) == 1 and not as_json:  # the one file given cannot be read: one line
        raise click.ClickException(f"{files[0]['file']}: {files[0]['message']}")
    if as_json:
        emit(data, True)
    else:
        for line in summary_lines(data):
            click.echo(line)
        if verbose:
            for outcome in files:
                for note in outcome["uncertain"]:
                    click.echo(f"uncertain {outcome['file']}: {note}")
    if nothing_read:  # some files may fail in a folder; none readable at all is an error (exit 1)
        sys.exit(1)


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--templates", "templates_dir", type=click.Path(file_okay=False), envvar="PROMPTKIT_TEMPLATES",
              help="The template folder to add them to (env: PROMPTKIT_TEMPLATES; default "
                   "~/.config/promptkit/templates, read by every command when it exists).")
@json_option
def presets_import(file: str, templates_dir: str | None, as_json: bool) -> None:
    """Add the styles in FILE as style presets: an AUTOMATIC1111 styles.csv (name,prompt,negative_prompt),
    a Fooocus style JSON or InvokeAI style presets (CSV or JSON). `{prompt}` in a style says where your
    prompt goes. Each preset keeps where it came from; one of the same name is replaced."""
    data = service.import_presets(file, templates_dir)
    emit(data, as_json, f"imported {data['imported']} style presets from {data['file']} ({data['format']}) "
                        f"into {data['target']}" + (f"; {data['replaced']} replaced" if data["replaced"] else ""))


# Its old name, kept: the same command (it once read only the prompt of an A1111 PNG).
import_png = click.Command("import-png", callback=import_images.callback, params=import_images.params,
                           help="The same as `promptkit import-images` (its old name); see `import-images --help`.",
                           short_help="Alias of import-images.")

COMMANDS = [import_images, import_png]
SUBCOMMANDS = {"presets": [presets_import]}  # attached to the `presets` group by the package
