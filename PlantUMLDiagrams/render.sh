#!/usr/bin/env bash
# Render every PlantUML diagram in this folder to a PNG next to it: PlantUMLDiagrams/render.sh
# A diagram that fails to render keeps its previous PNG, and the script exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v plantuml >/dev/null; then
    echo "render.sh: plantuml is not on PATH (Debian: apt-get install plantuml)" >&2
    exit 127
fi

shopt -s nullglob
sources=("$here"/*.puml)
if ((${#sources[@]} == 0)); then
    echo "render.sh: no .puml files in $here" >&2
    exit 1
fi

# PlantUML writes an error image where the diagram would be; render aside, move in on success.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

status=0
for source in "${sources[@]}"; do
    name="$(basename "$source" .puml)"
    if plantuml -tpng -failfast2 -o "$scratch" "$source" && [[ -s "$scratch/$name.png" ]]; then
        mv "$scratch/$name.png" "$here/$name.png"
        echo "rendered $name.png"
    else
        echo "render.sh: $source did not render" >&2
        status=1
    fi
done
exit "$status"
