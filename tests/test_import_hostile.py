"""import-images on malformed and hostile files: one line each, nothing written, the run goes on."""

import json
import struct
import zlib

from click.testing import CliRunner

from import_samples import A1111_TEXT, _chunk, base_png, png_bytes, text_chunk, write
from promptkit.cli import main
from promptkit.library import Library


def bomb_png() -> bytes:
    """A PNG claiming 20000 x 20000 pixels (400 MB once decoded): its first rows of zeros are real, enough
    that a decoder would start allocating; promptkit refuses it from its header, before any pixel."""
    width, height = 20_000, 20_000
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 + width) * 200, 1)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + text_chunk("parameters", A1111_TEXT)
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def huge_chunk_png(size: int = 100 << 20) -> bytes:
    """A 16 px PNG with a 100 MB `parameters` chunk before its image data."""
    data = base_png(size=(16, 16))
    head = b"tEXtparameters\0"
    filler = b"a" * (size - len(head) + 4)
    crc = zlib.crc32(filler, zlib.crc32(head))
    return b"".join((data[:33], struct.pack(">I", size), head, filler, struct.pack(">I", crc), data[33:]))


def nested_json_png(depth: int = 10_000) -> bytes:
    graph = "[" * depth + "]" * depth
    return png_bytes({"prompt": '{"3": {"class_type": "KSampler", "inputs": ' + graph + "}}"})


HOSTILE = {
    "empty.png": (lambda: b"", "it is empty"),
    "truncated.png": (lambda: png_bytes({"parameters": A1111_TEXT})[:-30], "truncated"),
    "plain.png": (lambda: base_png(size=(16, 16)), "no generation metadata"),
    "bomb.png": (bomb_png, "decompression bomb"),
    "huge.png": (huge_chunk_png, "over the 32 MB metadata limit"),
    "badutf8.png": (lambda: (lambda d: d[:33] + text_chunk("parameters", "", raw=b"caf\xe9 \xff\xfe") + d[33:])(
        base_png(size=(16, 16))), "not valid UTF-8"),
    "nested.png": (nested_json_png, "nested too deep"),
    "notimage.png": (lambda: b"hello, I am text", "not a PNG, JPEG or WebP"),
    "deep-infotext.png": (lambda: png_bytes({"parameters": "a cat\nSteps: 1, Seed: 2, Hashes: " + "[" * 10_000}),
                          None),
}


def test_each_hostile_file_is_one_line_and_the_run_goes_on(isolated_library, tmp_path):
    folder = tmp_path / "hostile"
    for name, (make, _) in HOSTILE.items():
        write(folder / name, make())
    write(folder / "zz-good.png", png_bytes({"parameters": A1111_TEXT}))
    result = CliRunner().invoke(main, ["import-images", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    by_name = {f["file"].rsplit("/", 1)[-1]: f for f in data["files"]}
    for name, (_, expected) in HOSTILE.items():
        outcome = by_name[name]
        if expected is None:  # a settings line A1111's grammar cannot read is kept as text, not a failure
            continue
        assert outcome["status"] == "failed", (name, outcome)
        assert expected in outcome["message"], (name, outcome["message"])
        assert "\n" not in outcome["message"] and "Traceback" not in outcome["message"]
    assert by_name["zz-good.png"]["status"] == "imported"
    with Library(isolated_library) as lib:
        rows = lib.db.execute("SELECT count(*) FROM generations").fetchone()[0]
        files = sorted(p.name for p in lib.images_dir.rglob("*") if p.is_file())
    imported = sum(f["status"] == "imported" for f in data["files"])
    assert rows == imported and len(files) == imported  # nothing partial: a file for each row, no other


def test_text_summary_names_each_skipped_file_once(isolated_library, tmp_path):
    folder = tmp_path / "mixed"
    write(folder / "empty.png", b"")
    write(folder / "truncated.png", png_bytes({"parameters": A1111_TEXT})[:-30])
    write(folder / "ok.png", png_bytes({"parameters": A1111_TEXT}))
    result = CliRunner().invoke(main, ["import-images", str(folder)])
    assert result.exit_code == 0, result.output
    skipped = [line for line in result.output.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2 and all(": it is" in line for line in skipped)
    assert "Traceback" not in result.output


def test_missing_path_is_one_line_naming_it(isolated_library, tmp_path):
    result = CliRunner().invoke(main, ["import-images", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "nowhere" in result.output and "does not exist" in result.output


def test_damaged_copies_of_every_format_read_or_refuse_in_one_line(tmp_path):
    """Seeded byte flips and cuts in each tool's sample: a reading or an UnreadableImage, nothing else."""
    import random

    from import_samples import write_each_tool
    from promptkit.importers import UnreadableImage, read_image

    write_each_tool(tmp_path / "samples")
    rng = random.Random(20261203)
    for file in sorted((tmp_path / "samples").rglob("*.*")):
        data = file.read_bytes()
        for _ in range(25):
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            if rng.random() < 0.3:
                damaged = damaged[:rng.randrange(len(damaged))]
            try:
                read_image(bytes(damaged))
            except UnreadableImage as exc:
                assert "\n" not in str(exc)


def test_numbers_past_sqlite_integers_are_kept_exactly_in_params(isolated_library, tmp_path):
    from import_samples import comfy_graph

    graph = comfy_graph()
    graph["3"]["inputs"]["seed"] = 2**64 - 1  # ComfyUI's largest seed
    write(tmp_path / "in" / "comfy.png", png_bytes({"prompt": json.dumps(graph)}))
    write(tmp_path / "in" / "huge.png", png_bytes({"parameters": "a cat\nSteps: 99999999999999999999999, "
                                                                 "Seed: -99999999999999999999, CFG scale: 1e999"}))
    result = CliRunner().invoke(main, ["import-images", str(tmp_path / "in"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["counts"]["imported"] == 2
    with Library(isolated_library) as lib:
        comfy = lib.get_generation(1)
        huge = lib.get_generation(2)
    assert comfy["seed"] == -1 and comfy["params"]["imported"]["settings"]["seed"] == 2**64 - 1
    assert huge["steps"] is None and huge["params"]["imported"]["settings"]["steps"] == 99999999999999999999999
    assert "cfg" not in huge["params"]["imported"]["settings"]


def test_nothing_readable_is_exit_1(isolated_library, tmp_path):
    """Some bad files in a folder: exit 0 and the summary; no file readable at all: exit 1; one named file
    that cannot be read: one line."""
    write(tmp_path / "one" / "empty.png", b"")
    single = CliRunner().invoke(main, ["import-png", str(tmp_path / "one" / "empty.png")])
    assert single.exit_code == 1 and single.output.strip().count("\n") == 0
    assert "empty.png: it is empty" in single.output
    write(tmp_path / "one" / "text.png", b"hello")
    both = CliRunner().invoke(main, ["import-images", str(tmp_path / "one"), "--json"])
    assert both.exit_code == 1 and json.loads(both.output)["counts"]["failed"] == 2
    write(tmp_path / "one" / "ok.png", png_bytes({"parameters": A1111_TEXT}))
    assert CliRunner().invoke(main, ["import-images", str(tmp_path / "one")]).exit_code == 0
