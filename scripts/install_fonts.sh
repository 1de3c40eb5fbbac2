#!/usr/bin/env bash
# Install the Debian font packages and word list that the shipped model was trained with
# (Debian/Ubuntu, as root). Training and `crnn-onnx synth` draw from every installed font;
# crnn_onnx/synth/fonts.py keeps a few families (HELDOUT_FAMILIES) out of training for evaluation.
# Exit codes: 0 installed, 1 apt-get failed.
set -euo pipefail
packages=(
  wamerican
  fonts-dejavu fonts-dejavu-extra fonts-liberation fonts-liberation2 fonts-freefont-ttf
  fonts-croscore fonts-crosextra-carlito fonts-crosextra-caladea fonts-roboto-unhinted
  fonts-roboto-slab fonts-open-sans fonts-lato fonts-cantarell fonts-urw-base35 fonts-texgyre
  fonts-linuxlibertine fonts-ebgaramond fonts-inconsolata fonts-hack-ttf fonts-firacode
  fonts-go fonts-jetbrains-mono fonts-noto-core fonts-sil-gentium fonts-sil-charis
  fonts-sil-andika fonts-sil-doulos fonts-vollkorn fonts-oldstandard fonts-quattrocento
  fonts-dosis fonts-comfortaa fonts-quicksand fonts-cabin fonts-karla fonts-manrope
  fonts-inter fonts-b612 fonts-clear-sans fonts-comic-neue fonts-courier-prime
  fonts-anonymous-pro fonts-adf-accanthis fonts-adf-baskervald fonts-adf-berenis
  fonts-adf-gillius fonts-adf-ikarius fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus
  fonts-adf-oldania fonts-adf-romande fonts-adf-switzera fonts-adf-tribun
  fonts-adf-universalis fonts-adf-verana fonts-averia-sans-gwf fonts-averia-serif-gwf
  fonts-play fonts-tuffy fonts-jura fonts-league-spartan fonts-oxygen fonts-ocr-b
  fonts-opendin fonts-cmu fonts-paratype fonts-mplus fonts-yanone-kaffeesatz fonts-sora
  fonts-tiresias fonts-gfs-didot fonts-gfs-bodoni-classic fonts-goudybookletter fonts-fanwood
  fonts-junction fonts-prociono fonts-cardo fonts-gnutypewriter fonts-mononoki
  fonts-fantasque-sans fonts-allerta fonts-arapey fonts-lindenhill fonts-arkpandora
  fonts-dustin fonts-kristi fonts-lobstertwo fonts-bebas-neue fonts-ubuntu-title
  fonts-staypuft fonts-isabella
  # added for the current model: signage, monospace, handwriting, old-style, school faces
  fonts-3270 fonts-agave fonts-adf-solothurn fonts-beteckna fonts-century-catalogue
  fonts-compagnon fonts-dancingscript fonts-ecolier-court fonts-elstob fonts-eurofurence
  fonts-f500 fonts-femkeklaver fonts-gamaliel fonts-hermit fonts-humor-sans fonts-junicode
  fonts-karmilla fonts-kaushanscript fonts-league-mono fonts-levien-museum fonts-lmodern
  fonts-lobster fonts-monofur fonts-monoid fonts-national-park fonts-ocr-a
  fonts-opendyslexic fonts-osifont fonts-radisnoir fonts-roadgeek fonts-routed-gothic
  fonts-rufscript fonts-sil-gentiumplus fonts-stix fonts-summersby fonts-le-murmure
  fonts-okolaks fonts-solide-mirage fonts-uralic fonts-klaudia-berenika fonts-breip
  fonts-havana fonts-engadget fonts-mph-2b-damase fonts-wine fonts-gfs-artemisia
  fonts-gfs-neohellenic fonts-millimetre fonts-bajaderka fonts-apropal
)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "installed ${#packages[@]} packages"
