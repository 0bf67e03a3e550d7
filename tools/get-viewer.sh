#!/usr/bin/env bash
# Fetch the prebuilt OHIF Viewer 3 (the production build that the npm package @ohif/app ships in
# dist/) into a folder that `archive serve --viewer-dir DIR` serves at /viewer/. No webpack
# build, no `npm install`: `npm pack` (one tarball) and unpack. Same as `archive viewer fetch`,
# plus a .local/viewer symlink for the repo's own tests.
#
#   tools/get-viewer.sh [--slim] [DIR]
#     DIR      where to put the viewer (default .local/ohif-$OHIF_VERSION in the repo);
#              a symlink .local/viewer -> DIR is kept when DIR is under .local/
#     --slim   drop ort/ (136 MB onnxruntime, only used by the AI segmentation tools)
#              and dicom-microscopy-viewer/ (20 MB); viewing images still works
#   OHIF_VERSION   npm version of @ohif/app (default 3.13.2, the version tested)
#   PYTHON         interpreter with the archive installed (default python3)
#
# Idempotent: a second run with the same version and slim choice does nothing.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OHIF_VERSION="${OHIF_VERSION:-3.13.2}"
SLIM=()
DIR=""
for a in "$@"; do
  case "$a" in
    --slim) SLIM=(--slim) ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "get-viewer: unknown option $a" >&2; exit 2 ;;
    *) DIR="$a" ;;
  esac
done
DIR="${DIR:-$REPO/.local/ohif-$OHIF_VERSION}"
t0=$(date +%s)
(cd "$REPO" && "${PYTHON:-python3}" -m archive viewer fetch --to "$DIR" \
   --ohif-version "$OHIF_VERSION" "${SLIM[@]}")
DIR="$(cd "$DIR" && pwd)"
case "$DIR" in "$REPO/.local/"*) ln -sfn "$(basename "$DIR")" "$REPO/.local/viewer" ;; esac
echo "get-viewer: $(du -sh "$DIR" | cut -f1) in $DIR ($(( $(date +%s) - t0 ))s)"
