#!/bin/bash
# Make the Debian base image the local images build on, with debootstrap + docker import:
# there is no Docker Hub here. A base image that already exists is kept (it is the slow
# part). The mirror is the one apt itself uses on this machine, read at run time.
set -euo pipefail

image=${1:-jshub-base:bookworm}
suite=${JSHUB_BASE_SUITE:-bookworm}

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "$image exists; kept"
    exit 0
fi

mirror_from_apt() {
    local file uri
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -e "$file" ]] || continue
        # deb822: the URIs line of the stanza whose Suites include the plain suite name.
        uri=$(awk -v suite="$suite" '
            /^URIs:/ { uris = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) found = uris }
            END { if (found) print found }' "$file")
        if [[ -n "$uri" ]]; then
            echo "$uri"
            return
        fi
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e "$file" ]] || continue
        uri=$(awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2; exit }' "$file")
        if [[ -n "$uri" ]]; then
            echo "$uri"
            return
        fi
    done
}

mirror=$(mirror_from_apt)
if [[ -z "$mirror" ]]; then
    echo "no apt source for suite $suite under /etc/apt: cannot choose a Debian mirror" >&2
    exit 1
fi

root=$(mktemp -d /var/tmp/jshub-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
start=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
    tail -n 30 "$root.log" >&2
    exit 1
}
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    - "$image" >/dev/null
echo "$image built from $mirror in $((SECONDS - start))s"
