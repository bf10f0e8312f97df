"""Stamp a rendered diagram with the hash of its source and the renderer that drew it.

``render.sh`` runs ``python3 png_stamp.py stamp <png> <puml>`` after PlantUML writes a PNG.
Two ``tEXt`` chunks go in after the header:

- ``plantuml-source-sha256``: the SHA-256 of the ``.puml`` (line endings normalised), so a
  PNG left behind by an edit of its source is found without rendering anything;
- ``plantuml-renderer``: the PlantUML, Java and Graphviz versions and the sans-serif font,
  so a test knows whether a fresh render here should match the committed pixels.

Standard library only: render.sh runs it with the system ``python3``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

SOURCE_KEY = "plantuml-source-sha256"
RENDERER_KEY = "plantuml-renderer"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_VERSION_LINES = {
    "plantuml": re.compile(r"^PlantUML version (\S+)", re.MULTILINE),
    # The major version only: a security update of the JRE does not move pixels.
    "java": re.compile(r"^Java Version: (\d+)", re.MULTILINE),
    "dot": re.compile(r"^Dot version: dot - graphviz version (\S+)", re.MULTILINE),
}


class PngError(ValueError):
    """The file is not a PNG this module can read."""


def source_digest(source: Path) -> str:
    """SHA-256 of a diagram source, with CRLF read as LF so a Windows checkout agrees."""
    return hashlib.sha256(source.read_bytes().replace(b"\r\n", b"\n")).hexdigest()


def renderer() -> str:
    """What draws the diagrams here.

    For example ``plantuml 1.2020.02; java 17; dot 2.43.0; font DejaVuSans.ttf``.

    Raises:
        FileNotFoundError: ``plantuml`` is not on PATH.
    """
    plantuml = shutil.which("plantuml")
    if plantuml is None:
        raise FileNotFoundError("plantuml is not on PATH")
    report = subprocess.run(
        [plantuml, "-version"], capture_output=True, text=True, timeout=120, check=False
    ).stdout
    parts = []
    for name, pattern in _VERSION_LINES.items():
        found = pattern.search(report)
        parts.append(f"{name} {found.group(1) if found else 'unknown'}")
    parts.append(f"font {_sans_serif_font()}")
    return "; ".join(parts)


def _sans_serif_font() -> str:
    # PlantUML's default font is Java's logical SansSerif, which fontconfig resolves.
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return "unknown"
    found = subprocess.run(
        [fc_match, "-f", "%{file}", "SansSerif"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.strip()
    return Path(found).name if found else "unknown"


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if not data.startswith(PNG_SIGNATURE):
        raise PngError("not a PNG")
    chunks = []
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
        if kind == b"IEND":
            return chunks
    raise PngError("truncated PNG")


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def text_fields(png: Path) -> dict[str, str]:
    """The ``tEXt`` keyword -> text pairs of a PNG.

    Raises:
        PngError: ``png`` is not a complete PNG.
    """
    fields = {}
    for kind, body in _chunks(png.read_bytes()):
        if kind == b"tEXt" and b"\0" in body:
            key, _, text = body.partition(b"\0")
            fields[key.decode("latin-1")] = text.decode("latin-1")
    return fields


def stamp(png: Path, fields: dict[str, str]) -> None:
    """Rewrite ``png`` with ``fields`` as ``tEXt`` chunks, replacing earlier ones of those keys.

    Raises:
        PngError: ``png`` is not a complete PNG.
    """
    chunks = _chunks(png.read_bytes())
    keys = {key.encode("latin-1") for key in fields}
    kept = [
        (kind, body)
        for kind, body in chunks
        if not (kind == b"tEXt" and body.partition(b"\0")[0] in keys)
    ]
    texts = [
        (b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
        for key, text in fields.items()
    ]
    # IHDR must stay first; text chunks may sit anywhere before IEND.
    ordered = [kept[0], *texts, *kept[1:]]
    png.write_bytes(PNG_SIGNATURE + b"".join(_chunk(kind, body) for kind, body in ordered))


def stamp_render(png: Path, source: Path, drawn_by: str) -> None:
    """Stamp a freshly rendered ``png`` with its ``source``'s hash and the renderer."""
    stamp(png, {SOURCE_KEY: source_digest(source), RENDERER_KEY: drawn_by})


def main(argv: list[str]) -> int:
    """``stamp <png> <puml> [<png> <puml> ...]``: stamp each rendered PNG."""
    if len(argv) < 3 or argv[0] != "stamp" or len(argv) % 2 == 0:
        print("usage: png_stamp.py stamp <png> <puml> [<png> <puml> ...]", file=sys.stderr)
        return 2
    drawn_by = renderer()
    pairs = argv[1:]
    for png, source in zip(pairs[::2], pairs[1::2], strict=True):
        stamp_render(Path(png), Path(source), drawn_by)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
