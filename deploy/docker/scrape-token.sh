#!/bin/sh
# The compose file's one-shot `scrape-token` service: an operator account `prometheus` and an
# API token for it, written where Prometheus reads its `credentials_file`. Prometheus scrapes
# from another container, not a loopback peer, so /metrics wants a token (docs/metrics.md,
# "Who may scrape"). Runs again on every `docker compose up`: once the file is there it does
# nothing; delete the file (the volume) for a new token, and revoke the old one
# (`microfab user list`, `microfab user revoke-token ID`).
set -eu

config="${MICROFAB_CONFIG:-/etc/microfab/plant.toml}"
token_file="${SCRAPE_TOKEN_FILE:-/run/scrape-token/microfab.token}"
# Who may read the token: Prometheus's user (`nobody` in the prom/prometheus image).
reader="${SCRAPE_TOKEN_READER:-65534:65534}"

if [ -s "$token_file" ]; then
    echo "scrape token: $token_file is there already"
    exit 0
fi

# The account signs in only with its token: its password is random and never shown.
if ! added=$(head -c 32 /dev/urandom | base64 | tr -d '\n' |
    microfab user add prometheus --role operator --password-stdin --config "$config" 2>&1); then
    case "$added" in
        *"exists already"*) ;;
        *)
            echo "$added" >&2
            exit 1
            ;;
    esac
fi

umask 077
microfab user token prometheus --label "prometheus scrape" --config "$config" >"$token_file.new"
chown "$reader" "$token_file.new"
mv "$token_file.new" "$token_file"
echo "scrape token: written to $token_file"
