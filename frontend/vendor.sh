#!/bin/sh
# Copy the front-end libraries pinned in frontend/package-lock.json into hub/static/vendor/.
#
# Why vendored: the hub must work offline and `make run` must not need npm, so the built
# files are committed. Re-run this (or `make vendor`) after changing a version in
# package.json; it installs exactly what the lockfile says (`npm ci`) and rewrites
# VERSIONS.txt and the licence files next to the copies.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$(cd "$here/.." && pwd)/hub/static/vendor"
cd "$here"
npm ci --no-audit --no-fund
mkdir -p "$out/licenses"
m=node_modules
cp "$m/htmx.org/dist/htmx.min.js" "$out/htmx.min.js"
cp "$m/htmx-ext-sse/dist/sse.min.js" "$out/htmx-ext-sse.min.js"
cp "$m/uplot/dist/uPlot.iife.min.js" "$out/uPlot.iife.min.js"
cp "$m/uplot/dist/uPlot.min.css" "$out/uPlot.min.css"
cp "$m/htmx.org/LICENSE" "$out/licenses/htmx.org.LICENSE"
cp "$m/htmx-ext-sse/LICENSE" "$out/licenses/htmx-ext-sse.LICENSE"
cp "$m/uplot/LICENSE" "$out/licenses/uplot.LICENSE"
{
  echo "# Vendored by frontend/vendor.sh from the npm registry; do not edit by hand."
  for pkg in htmx.org htmx-ext-sse uplot; do
    node -e 'const p=require(process.argv[1]); console.log(`${p.name} ${p.version} ${p.license || "(no licence field; see licenses/" + p.name + ".LICENSE)"}`)' "$here/$m/$pkg/package.json"
  done
} > "$out/VERSIONS.txt"
echo "vendored into $out:" && cat "$out/VERSIONS.txt"
