"""Each committed diagram PNG is a fresh render of its PlantUML source.

Two checks, so a stale PNG fails whatever machine runs them:

- the source hash render.sh stamps into each PNG must be the hash of the ``.puml`` now
  (no rendering, no fonts involved);
- each diagram must render without errors, and to the committed pixels where the
  renderer (PlantUML, Java, Graphviz, font) is the one that drew them; elsewhere pixels
  cannot be compared and the hash alone decides.

PlantUML is required (``scripts/system_deps.sh test`` installs it): without it these
tests fail rather than skip.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

DIAGRAM_DIR = Path(__file__).resolve().parents[1] / "PlantUMLDiagrams"
DIAGRAMS = sorted(DIAGRAM_DIR.glob("*.puml"))
# PlantUML crops anything wider or taller than 4096 px unless PLANTUML_LIMIT_SIZE is raised.
MAX_SIDE_PX = 4096
MIN_SIDE_PX = 200
RERENDER = "run PlantUMLDiagrams/render.sh and commit the PNGs"


def _load_png_stamp() -> ModuleType:
    # render.sh's helper lives with the diagrams, outside every package.
    spec = importlib.util.spec_from_file_location("png_stamp", DIAGRAM_DIR / "png_stamp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


png_stamp = _load_png_stamp()


@pytest.fixture(scope="session")
def plantuml() -> str:
    """The plantuml executable; its absence fails the test, naming what to install."""
    found = shutil.which("plantuml")
    if found is None:
        pytest.fail(
            "plantuml is not on PATH: run scripts/system_deps.sh test "
            "(Debian: apt-get install plantuml)"
        )
    return found


@pytest.fixture(scope="session")
def renderer_here(plantuml: str) -> str:
    """The renderer fingerprint of this machine, as render.sh stamps it."""
    return str(png_stamp.renderer())


def render(plantuml: str, source: Path, out_dir: Path) -> subprocess.CompletedProcess[str]:
    """Render ``source`` to PNG in ``out_dir`` as render.sh does."""
    return subprocess.run(
        [plantuml, "-tpng", "-failfast2", "-o", str(out_dir), str(source)],
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
        problems += size_problems(png)
    return problems


def size_problems(png: Path) -> list[str]:
    """Why ``png`` is not a plausible diagram: not a PNG, too small or cropped; empty if fine."""
    try:
        with Image.open(png) as image:
            width, height = image.size
    except OSError as exc:
        return [f"{png.name} is not a readable PNG: {exc}"]
    longest = max(width, height)
    if not MIN_SIDE_PX <= longest <= MAX_SIDE_PX:
        return [f"{png.name} is {width}x{height} px, outside {MIN_SIDE_PX}..{MAX_SIDE_PX}"]
    if png.stat().st_size < 5_000:
        return [f"{png.name} is only {png.stat().st_size} bytes"]
    return []


def staleness_problems(source: Path, png: Path) -> list[str]:
    """Why ``png`` is not the render of ``source`` as it is now, by the stamped source hash."""
    if not png.is_file():
        return [f"{png.name} is missing; {RERENDER}"]
    try:
        stamped = png_stamp.text_fields(png).get(png_stamp.SOURCE_KEY)
    except png_stamp.PngError as exc:
        return [f"{png.name}: {exc}; {RERENDER}"]
    if stamped is None:
        return [f"{png.name} carries no source hash; {RERENDER}"]
    if stamped != png_stamp.source_digest(source):
        return [f"{png.name} was rendered from another version of {source.name}; {RERENDER}"]
    return []


def pixels(png: Path) -> tuple[tuple[int, int], bytes]:
    """Size and RGBA pixels of a PNG: what a reader sees, whatever the encoder's choices."""
    with Image.open(png) as image:
        return image.size, image.convert("RGBA").tobytes()


def pixel_problems(plantuml: str, source: Path, png: Path, out_dir: Path) -> list[str]:
    """Why a fresh render of ``source`` does not show the pixels of ``png``."""
    fresh = out_dir / f"{source.stem}.png"
    problems = rendering_problems(render(plantuml, source, out_dir), fresh)
    return problems or differences(fresh, png)


def differences(fresh: Path, png: Path) -> list[str]:
    """Why the committed ``png`` does not show the pixels of a ``fresh`` render."""
    (fresh_size, fresh_pixels), (committed_size, committed_pixels) = pixels(fresh), pixels(png)
    if fresh_size != committed_size:
        return [f"{png.name} is {committed_size}, a fresh render {fresh_size}; {RERENDER}"]
    if fresh_pixels != committed_pixels:
        return [f"{png.name} differs from a fresh render; {RERENDER}"]
    return []


def test_diagrams_exist() -> None:
    assert {path.name for path in DIAGRAMS} >= {"architecture.puml", "ingestion_sequence.puml"}


@pytest.mark.parametrize("source", DIAGRAMS, ids=lambda path: path.name)
def test_committed_png_is_rendered_from_the_current_source(source: Path) -> None:
    png = source.with_suffix(".png")

    assert staleness_problems(source, png) == []
    assert size_problems(png) == []


@pytest.mark.parametrize("source", DIAGRAMS, ids=lambda path: path.name)
def test_diagram_renders_to_the_committed_pixels(
    source: Path, plantuml: str, renderer_here: str, tmp_path: Path
) -> None:
    fresh = tmp_path / f"{source.stem}.png"
    assert rendering_problems(render(plantuml, source, tmp_path), fresh) == []

    png = source.with_suffix(".png")
    drawn_by = png_stamp.text_fields(png).get(png_stamp.RENDERER_KEY)
    if drawn_by != renderer_here:
        pytest.skip(
            f"{png.name} was drawn by {drawn_by}, this machine has {renderer_here}: "
            "fonts and layout differ, so only the source hash is checked"
        )
    assert differences(fresh, png) == []


def test_a_png_left_behind_by_an_edit_of_its_source_is_stale(
    plantuml: str, renderer_here: str, tmp_path: Path
) -> None:
    original = DIAGRAM_DIR / "eda_flow.puml"
    source = tmp_path / original.name
    png = source.with_suffix(".png")
    shutil.copy(original, source)
    shutil.copy(original.with_suffix(".png"), png)
    assert staleness_problems(source, png) == []

    text = source.read_text(encoding="utf-8")
    source.write_text(text.replace("title EDA:", "title Edited EDA:"), encoding="utf-8")

    assert any("another version" in p for p in staleness_problems(source, png))
    if png_stamp.text_fields(png).get(png_stamp.RENDERER_KEY) == renderer_here:
        fresh = pixel_problems(plantuml, source, png, tmp_path / "out")
        assert fresh and all(RERENDER in problem for problem in fresh), fresh


def test_a_png_without_a_stamp_is_stale(plantuml: str, tmp_path: Path) -> None:
    source = tmp_path / "eda_flow.puml"
    shutil.copy(DIAGRAM_DIR / source.name, source)
    render(plantuml, source, tmp_path)

    problems = staleness_problems(source, tmp_path / "eda_flow.png")

    assert any("carries no source hash" in p for p in problems), problems


def test_stamping_keeps_the_image_and_replaces_earlier_stamps(tmp_path: Path) -> None:
    png = tmp_path / "copy.png"
    shutil.copy(DIAGRAM_DIR / "eda_flow.png", png)
    before = pixels(png)

    png_stamp.stamp(png, {png_stamp.SOURCE_KEY: "0" * 64, "other": "kept"})
    png_stamp.stamp(png, {png_stamp.SOURCE_KEY: "1" * 64})

    fields = png_stamp.text_fields(png)
    assert fields[png_stamp.SOURCE_KEY] == "1" * 64
    assert fields["other"] == "kept"
    assert pixels(png) == before


def test_a_broken_diagram_is_reported(plantuml: str, tmp_path: Path) -> None:
    source = tmp_path / "broken.puml"
    source.write_text("@startuml\nAlice -> : : ((\nclass {{\n@enduml\n", encoding="utf-8")

    problems = rendering_problems(
        render(plantuml, source, tmp_path / "out"), tmp_path / "out/broken.png"
    )

    assert any("exited with" in problem for problem in problems), problems
    assert any("reported an error" in problem for problem in problems), problems


def test_every_png_has_its_source() -> None:
    orphans = [
        png.name for png in DIAGRAM_DIR.glob("*.png") if not png.with_suffix(".puml").is_file()
    ]

    assert orphans == []
