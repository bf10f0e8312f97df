#!/usr/bin/env bash
# Render every PlantUML diagram in this folder to a PNG next to it: PlantUMLDiagrams/render.sh
# A diagram that fails to render keeps its previous PNG, and the script exits non-zero.
# Needs plantuml (Debian: apt-get install plantuml) and python3 on PATH.
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
rendered=()
for source in "${sources[@]}"; do
    name="$(basename "$source" .puml)"
    if plantuml -tpng -failfast2 -o "$scratch" "$source" && [[ -s "$scratch/$name.png" ]]; then
        rendered+=("$scratch/$name.png" "$source")
    else
        echo "render.sh: $source did not render" >&2
        status=1
    fi
done

# Each PNG carries its source's hash and the renderer's versions: tests/test_diagrams.py
# finds a PNG older than its source by the hash, and re-renders where the renderer matches.
if ((${#rendered[@]} > 0)); then
    python3 "$here/png_stamp.py" stamp "${rendered[@]}"
    for ((i = 0; i < ${#rendered[@]}; i += 2)); do
        png="${rendered[i]}"
        mv "$png" "$here/$(basename "$png")"
        echo "rendered $(basename "$png")"
    done
fi
exit "$status"
