#!/usr/bin/env bash
# Refreshes the web page's front-end libraries in gateway/static/vendor/ from the npm
# registry, at the exact versions of web/package-lock.json (change web/package.json, run
# `npm install --package-lock-only` in web/, then this script, and commit the result).
#
# The vendored files are committed, so that the gateway serves the page with no internet
# and no npm on the machine. Only what the page loads is copied (minified builds, the
# fonts and data files the libraries fetch at run time), with each package's licences.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v npm >/dev/null || { echo "error: npm is needed to refresh the vendored libraries" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp web/package.json web/package-lock.json "$work/"
# --ignore-scripts: nothing from the registry runs here; --omit=optional: pdfjs-dist's
# optional native canvas is for Node.js, not the browser.
(cd "$work" && npm ci --ignore-scripts --omit=optional --no-audit --no-fund --loglevel=error)

modules="$work/node_modules"
out=gateway/static/vendor
rm -rf "$out"
mkdir -p "$out"

# copy PACKAGE PATTERN... : files or folders of node_modules/PACKAGE (glob patterns,
# expanded inside the package) into vendor/PACKAGE/, keeping their paths, plus every
# LICENSE* file at the package's top. A pattern that matches nothing is an error.
copy() {
  local package=$1; shift
  local dest="$PWD/$out/$package" pattern path
  mkdir -p "$dest"
  (
    cd "$modules/$package"
    for pattern in "$@" 'LICENSE*'; do
      # shellcheck disable=SC2086  # the pattern is meant to be expanded here
      for path in $pattern; do
        [ -e "$path" ] || { echo "error: $package has no $pattern" >&2; exit 1; }
        cp -r --parents "$path" "$dest/"
      done
    done
  )
}

copy marked lib/marked.esm.js
copy dompurify dist/purify.min.js
copy katex dist/katex.min.js dist/katex.min.css 'dist/fonts/*.woff2'
# pdf.js: the library and its worker; the CMaps (CJK text in fonts that are not embedded),
# the standard fonts (the 14 PDF fonts when not embedded), the ICC profile and the
# WebAssembly decoders (JPEG 2000, JBIG2 scans, colour conversion), each with its licence.
copy pdfjs-dist build/pdf.min.mjs build/pdf.worker.min.mjs cmaps standard_fonts iccs \
  wasm/openjpeg.wasm wasm/jbig2.wasm wasm/qcms_bg.wasm \
  wasm/LICENSE_OPENJPEG wasm/LICENSE_PDFJS_OPENJPEG wasm/LICENSE_JBIG2 wasm/LICENSE_PDFJS_JBIG2 \
  wasm/LICENSE_QCMS wasm/LICENSE_PDFJS_QCMS

{
  echo "# Vendored by scripts/vendor_web.sh from the npm registry (web/package-lock.json)."
  echo "# package version licence"
  for package in marked dompurify katex pdfjs-dist; do
    node -e "const p = require(process.argv[1]); console.log(p.name, p.version, p.license)" \
      "$modules/$package/package.json"
  done
} > "$out/VERSIONS.txt"

cat "$out/VERSIONS.txt"
du -sh "$out"
