"""Library maintenance commands: doctor, export, import."""

from __future__ import annotations

import sys

import click

from .options import emit, json_option, lazy_module

service = lazy_module("promptkit.service.maintenance")


@click.command()
@click.option("--fix", is_flag=True,
              help="Move orphan and leftover temp files to <dbstem>-quarantine/ (nothing is deleted; "
                   "files a row refers to are never touched).")
@click.option("--min-age", "min_age", type=click.FloatRange(min=0), default=600, show_default=True,
              help="Seconds: --fix leaves younger stray files alone, as they may belong to a write in progress.")
@json_option
@click.pass_context
def doctor(ctx: click.Context, fix: bool, min_age: float, as_json: bool) -> None:
    """Check the library: database integrity, foreign keys, schema version, every image's sha256,
    orphan and temp files. Exit 1 when something is inconsistent."""
    report = service.check_library(ctx.obj["db"], fix=fix, min_age=min_age)
    if as_json:
        emit(report.to_dict(), True)
    else:
        _print_doctor_report(report, fix)
    if not report.ok:
        sys.exit(1)


def _print_doctor_report(report, fix: bool) -> None:
    schema = report.schema
    damaged = any(f.check == "integrity" for f in report.findings)
    if schema["version"]:
        state = f"schema {schema['version']}, " + ("up to date" if not schema["pending"] and not schema["unknown"]
                                                   else "see below")
    else:
        state = "schema unreadable" if damaged else "no schema yet"
    click.echo(f"library: {report.db} ({state})")
    counts = report.counts
    click.echo(f"checked: {counts['generations']} generations, {counts['files_hashed']} image files hashed, "
               f"{counts['files_on_disk']} files under {report.images_dir}")
    for finding in report.findings:
        label = "fixed" if finding.fixed else ("problem" if finding.problem else "note")
        where = f" {finding.path}:" if finding.path else ""
        line = f"{label}: {finding.check}:{where} {finding.message}"
        if finding.action:
            line += f" [{finding.action}]"
        click.echo(line)
    unfixed = [f for f in report.findings if f.problem and not f.fixed]
    if not unfixed:
        click.echo("ok: the library is consistent")
        return
    click.echo(f"{len(unfixed)} problem(s)")
    if damaged:
        click.echo("the database file is damaged: restore a backup (<db>.backup-*) or an export; "
                   "`sqlite3 DB .recover` may salvage rows")
    if not fix and report.fixable:
        click.echo(f"run `promptkit doctor --fix` to move {len(report.fixable)} stray file(s) to quarantine")


@click.command("export")
@click.argument("folder")
@json_option
@click.pass_context
def export_command(ctx: click.Context, folder: str, as_json: bool) -> None:
    """Write a portable copy of the library to FOLDER: manifest.json, one JSON-lines file per
    table, images/<sha256>.png and loras/<sha256>.safetensors."""
    with service.open_library(ctx.obj["db"], create=False) as lib:
        manifest = service.export_library(lib, folder)
    counts = manifest["counts"]
    emit(manifest, as_json, f"exported {counts['prompts']} prompts, {counts['generations']} generations, "
                            f"{counts['ratings']} ratings, {counts['experiments']} experiments, "
                            f"{counts['votes']} votes and "
                            f"{counts['images']} images"
                            + (f" and {counts['loras']} LoRA files" if counts.get("loras") else "") + f" to {folder}")


@click.command("import")
@click.argument("folder")
@json_option
@click.pass_context
def import_command(ctx: click.Context, folder: str, as_json: bool) -> None:
    """Merge an export FOLDER into the library; rows already there are skipped, ids remapped."""
    export = service.read_export(folder)  # all checks first: a bad export must not even create the library
    with service.open_library(ctx.obj["db"]) as lib:
        summary = service.import_library(lib, export)
    if as_json:
        emit(summary, True)
        return
    added = ", ".join(f"{n} {table}" for table, n in summary["added"].items() if n) or "nothing new"
    present = sum(summary["present"].values())
    click.echo(f"imported {added}; {summary['images_added']} new images"
               + (f", {summary['loras_added']} new LoRA files" if summary.get("loras_added") else "")
               + (f"; {present} rows were already in the library" if present else ""))
    for rename in summary["renamed"]:
        click.echo(f"renamed {rename['table'][:-1]} {rename['from']!r} to {rename['to']!r} (the name was taken)")
    for note in summary["notes"]:
        click.echo(f"note: {note}")


COMMANDS = [doctor, export_command, import_command]
