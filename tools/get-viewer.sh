#!/usr/bin/env bash
# Fetch the prebuilt OHIF Viewer 3 (the production build that the npm package
# @ohif/app ships in dist/) into a folder that `archive serve --viewer-dir DIR`
# serves at /viewer/. No webpack build, no `npm install` of the app's build deps:
# only `npm pack` (one tarball) and tar.
#
#   tools/get-viewer.sh [--slim] [DIR]
#     DIR      where to put the viewer (default .local/ohif-$OHIF_VERSION in the repo);
#              a symlink .local/viewer -> DIR is kept when DIR is under .local/
#     --slim   drop ort/ (136 MB onnxruntime, only used by the AI segmentation tools)
#              and dicom-microscopy-viewer/ (20 MB); viewing images still works
#   OHIF_VERSION   npm version of @ohif/app (default 3.13.2, the version tested)
#
# Idempotent: a second run with the same version (and slim choice) does nothing.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OHIF_VERSION="${OHIF_VERSION:-3.13.2}"
SLIM=0
DIR=""
for a in "$@"; do
  case "$a" in
    --slim) SLIM=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "get-viewer: unknown option $a" >&2; exit 2 ;;
    *) DIR="$a" ;;
  esac
done
DIR="${DIR:-$REPO/.local/ohif-$OHIF_VERSION}"
command -v npm >/dev/null || { echo "get-viewer: npm not found (apt-get install npm, or node >= 18)" >&2; exit 1; }
mkdir -p "$(dirname "$DIR")"
DIR="$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")"
stamp="$OHIF_VERSION slim=$SLIM"

if [ -f "$DIR/.installed" ] && [ "$(cat "$DIR/.installed")" = "$stamp" ]; then
  echo "get-viewer: @ohif/app@$OHIF_VERSION already in $DIR"
  exit 0
fi
t0=$(date +%s)
tmp="$(mktemp -d "$(dirname "$DIR")/.ohif-pack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "get-viewer: npm pack @ohif/app@$OHIF_VERSION"
(cd "$tmp" && npm pack --silent "@ohif/app@$OHIF_VERSION" >/dev/null 2>"$tmp/npm.err") \
  || { grep -v 'Unknown user config' "$tmp/npm.err" >&2; exit 1; }
tar xzf "$tmp"/ohif-app-*.tgz -C "$tmp" package/dist package/package.json
if [ ! -f "$tmp/package/dist/index.html" ] || ! ls "$tmp"/package/dist/app.bundle.*.js >/dev/null 2>&1; then
  echo "get-viewer: @ohif/app@$OHIF_VERSION has no prebuilt dist/ (index.html + app.bundle.*.js)" >&2
  exit 1
fi
if [ "$SLIM" = 1 ]; then rm -rf "$tmp/package/dist/ort" "$tmp/package/dist/dicom-microscopy-viewer"; fi
cp "$tmp/package/package.json" "$tmp/package/dist/.package.json"
echo "$stamp" > "$tmp/package/dist/.installed"
rm -rf "$DIR"
mv "$tmp/package/dist" "$DIR"
case "$DIR" in "$REPO/.local/"*) ln -sfn "$(basename "$DIR")" "$REPO/.local/viewer" ;; esac
echo "get-viewer: done in $(( $(date +%s) - t0 ))s; $(du -sh "$DIR" | cut -f1) in $DIR"
echo "get-viewer: serve it with: archive serve --viewer-dir $DIR   (then open http://HOST:PORT/viewer/)"
