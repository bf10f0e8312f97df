"""The PlantUML diagrams render without errors, and each has its rendered PNG committed."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

DIAGRAM_DIR = Path(__file__).resolve().parents[1] / "PlantUMLDiagrams"
DIAGRAMS = sorted(DIAGRAM_DIR.glob("*.puml"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PlantUML crops anything wider or taller than 4096 px unless PLANTUML_LIMIT_SIZE is raised.
MAX_SIDE_PX = 4096
MIN_SIDE_PX = 200

needs_plantuml = pytest.mark.skipif(
    shutil.which("plantuml") is None,
    reason="plantuml is not on PATH (Debian: apt-get install plantuml; CI installs it)",
)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG, read from its IHDR chunk; ValueError if it is no PNG."""
    header = path.read_bytes()[:24]
    if len(header) < 24 or not header.startswith(PNG_SIGNATURE) or header[12:16] != b"IHDR":
        raise ValueError(f"{path.name} is not a PNG")
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def render(source: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    """Render ``source`` to PNG in ``out_dir`` as render.sh does."""
    return subprocess.run(
        ["plantuml", "-tpng", "-failfast2", "-o", str(out_dir), str(source)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def rendering_problems(result: subprocess.CompletedProcess[str], png: Path) -> list[str]:
    """Why a render did not produce a usable PNG; empty when it did."""
    output = result.stdout + result.stderr
    problems = []
    if result.returncode != 0:
        problems.append(f"plantuml exited with {result.returncode}")
    if "Syntax Error" in output or "Error line" in output or "contains errors" in output:
        problems.append(f"plantuml reported an error: {output.strip()}")
    if not png.is_file():
        problems.append(f"no {png.name} was written")
    else:
        problems += _size_problems(png)
    return problems


def _size_problems(png: Path) -> list[str]:
    try:
        width, height = png_size(png)
    except ValueError as exc:
        return [str(exc)]
    longest = max(width, height)
    if not MIN_SIDE_PX <= longest <= MAX_SIDE_PX:
        return [f"{png.name} is {width}x{height} px, outside {MIN_SIDE_PX}..{MAX_SIDE_PX}"]
    if png.stat().st_size < 5_000:
        return [f"{png.name} is only {png.stat().st_size} bytes"]
    return []


def test_diagrams_exist() -> None:
    assert {path.name for path in DIAGRAMS} >= {"architecture.puml", "ingestion_sequence.puml"}


@needs_plantuml
@pytest.mark.parametrize("source", DIAGRAMS, ids=lambda path: path.name)
def test_diagram_renders_without_errors(source: Path, tmp_path: Path) -> None:
    result = render(source, tmp_path)

    assert rendering_problems(result, tmp_path / f"{source.stem}.png") == []


@needs_plantuml
def test_a_broken_diagram_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "broken.puml"
    source.write_text("@startuml\nAlice -> : : ((\nclass {{\n@enduml\n", encoding="utf-8")

    problems = rendering_problems(render(source, tmp_path / "out"), tmp_path / "out/broken.png")

    assert any("exited with" in problem for problem in problems), problems
    assert any("reported an error" in problem for problem in problems), problems


@pytest.mark.parametrize("source", DIAGRAMS, ids=lambda path: path.name)
def test_diagram_has_its_rendered_png_committed(source: Path) -> None:
    png = source.with_suffix(".png")

    assert png.is_file(), f"run PlantUMLDiagrams/render.sh and commit {png.name}"
    assert _size_problems(png) == []


def test_every_png_has_its_source() -> None:
    orphans = [
        png.name for png in DIAGRAM_DIR.glob("*.png") if not png.with_suffix(".puml").is_file()
    ]

    assert orphans == []
