#!/bin/bash
# Docker secrets arrive as files under /run/secrets; JupyterHub's config reads them from the
# environment, as on a hub VM. A secret named oauth_client_secret becomes OAUTH_CLIENT_SECRET.
set -euo pipefail

if [[ -d /run/secrets ]]; then
    for file in /run/secrets/*; do
        [[ -f "$file" ]] || continue
        name=$(basename "$file" | tr '[:lower:]-' '[:upper:]_')
        if [[ "$name" =~ ^[A-Z_][A-Z0-9_]*$ ]]; then
            export "$name=$(<"$file")"
        fi
    done
fi
exec "$@"
