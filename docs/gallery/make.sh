#!/usr/bin/env bash
# Re-make the README's gallery from the experiment presets (conf/experiment/) and the ode_limit
# sweep preset (conf/grid/ode_limit.yaml). Run from anywhere; about 3 minutes on 2 cores.
#   docs/gallery/make.sh            # into docs/gallery/, runs under outputs/gallery/
# RIEMEXP names the command (default: the repository's .venv/bin/riemexp).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
RIEMEXP=${RIEMEXP:-.venv/bin/riemexp}
OUT=outputs/gallery
GALLERY=docs/gallery

for preset in spirals_residual spirals_plain circles_width2 circles_width3; do
  "$RIEMEXP" train +experiment="$preset" hydra.run.dir="$OUT/$preset"
done
"$RIEMEXP" sweep grid=ode_limit hydra.sweep.dir="$OUT/ode_limit"

for kind in residual plain; do
  for figure in layers input_space; do
    cp "$OUT/spirals_$kind/plots/$figure.png" "$GALLERY/spirals-$kind-$figure.png"
  done
done
cp "$OUT/spirals_residual/plots/snapshots.png" "$GALLERY/spirals-residual-snapshots.png"
for width in 2 3; do
  cp "$OUT/circles_width$width/plots/layers.png" "$GALLERY/circles-width$width-layers.png"
done
cp "$OUT/ode_limit/plots/ode_limit_log_volume.png" "$GALLERY/ode-limit-log_volume.png"
echo "gallery: $(ls "$GALLERY"/*.png | wc -l) images in $GALLERY"
