#!/bin/sh
# Installs what building and testing popgate needs on Debian 12. Idempotent and
# quick when everything is there: apt is only touched for missing packages.
#
# The system Dovecot and Redis services must never start: they would take ports
# 110, 143 and 6379 and run with the distribution's config. The test bed starts
# its own instances on free loopback ports, so a policy-rc.d that refuses
# service starts is in place while apt runs, and any service that came up
# anyway is stopped afterwards.
set -eu

PACKAGES="gcc make pkg-config libev-dev libhiredis-dev libssl-dev libcmocka-dev
libinih-dev redis-server dovecot-imapd dovecot-pop3d dovecot-lmtpd fetchmail mpop
curl python3 python3-pytest openssl procps clang libclang-rt-14-dev haproxy valgrind"
# Callers with needs of their own (bench/install-deps.sh) add to the list.
PACKAGES="$PACKAGES ${EXTRA_PACKAGES:-}"

# One dpkg-query for all packages; it exits non-zero when some are unknown.
# shellcheck disable=SC2086 # word splitting of the package list is intended
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $PACKAGES 2>/dev/null || true)
missing=""
for p in $PACKAGES; do
    if ! printf '%s\n' "$installed" | grep -qx "$p installed"; then
        missing="$missing $p"
    fi
done

# Cyrus IMAP conflicts with dovecot-imapd: it is never installed, but unpacked
# into a private root under build/servers/ (deploy/dev/servers/cyrus.py; quick
# when it is there). The test bed also does this on first use.
private_servers() {
    python3 "$(dirname "$0")/servers/cyrus.py" >/dev/null
}

if [ -z "$missing" ]; then
    private_servers
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-deps: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
else
    SUDO=""
fi

echo "install-deps: installing$missing"

POLICY=/usr/sbin/policy-rc.d
policy_ours=no
if [ ! -e "$POLICY" ]; then
    # Exit status 101 tells invoke-rc.d the action is forbidden.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 0755 "$POLICY"
    policy_ours=yes
fi
remove_policy() {
    if [ "$policy_ours" = yes ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap remove_policy EXIT

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends $missing

# Belt and braces for systems where policy-rc.d is not consulted (systemd
# units started by a preset): stop and disable the services this run installed.
# A service that was installed before is the administrator's and left alone.
services=""
case "$missing" in *dovecot*) services="dovecot" ;; esac
case "$missing" in *redis-server*) services="$services redis-server" ;; esac
for svc in $services; do
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
    elif command -v service >/dev/null 2>&1; then
        $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
done

private_servers
