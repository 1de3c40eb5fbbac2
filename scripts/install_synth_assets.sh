#!/usr/bin/env bash
# Install what crnn_onnx.synth draws on (Debian/Ubuntu, as root): the font packages of
# scripts/install_fonts.sh, and the photographs and textures the realistic renderer
# (crnn_onnx/synth/scene.py) cuts backgrounds from: desktop wallpapers, GIMP's texture
# patterns and MyPaint's papers. scikit-image's sample photos are used too when it is
# installed (pip install scikit-image).
# Exit codes: 0 installed, 1 apt-get failed.
set -euo pipefail
bash "$(dirname "$0")/install_fonts.sh"
packages=(
  plasma-workspace-wallpapers gnome-backgrounds mate-backgrounds ukui-wallpapers
  lomiri-wallpapers gimp-data mypaint-data-extras
)
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "installed ${#packages[@]} background packages"
