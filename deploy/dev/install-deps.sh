#!/bin/sh
# Installs what popgate needs on Debian 12, and never removes anything.
#
#   install-deps.sh demo   what `make demo` needs: the build, Dovecot's IMAP
#                          server, Redis, and the clients the demo prints
#   install-deps.sh deb    what `make deb` needs: the build, debhelper and
#                          lintian (the package's build and its check)
#   install-deps.sh test   (the default) everything `make test`, `make fuzz`,
#                          `make test-valgrind` and `make deb` need
#
# Idempotent and quick when everything is there: apt is only touched for
# missing packages. Callers with needs of their own add them in
# EXTRA_PACKAGES (bench/install-deps.sh).
#
# Never removes a package. In Debian, Dovecot's IMAP server conflicts with
# Courier's and Cyrus's (they all provide imap-server): installing
# dovecot-imapd on a machine that runs one of them would uninstall it. So the
# installation is simulated first (apt-get -s); if apt would remove anything,
# this script stops, names the packages, and changes nothing. The real
# apt-get then runs with --no-remove as well.
#
# The system Dovecot and Redis services must never start: they would take ports
# 110, 143 and 6379 and run with the distribution's config. The test bed starts
# its own instances on free loopback ports, so a policy-rc.d that refuses
# service starts is in place while apt runs, and any service that came up
# anyway is stopped afterwards.
set -eu

BUILD="gcc make pkg-config libev-dev libhiredis-dev libssl-dev libinih-dev
libcurl4-openssl-dev libjansson-dev libargon2-dev"
# The demo's stack (deploy/dev/demo.py): Dovecot IMAP and Redis started
# privately, a certificate made with openssl, and the clients it prints.
DEMO="$BUILD redis-server dovecot-imapd python3 openssl curl fetchmail mpop"
# The Debian package (debian/, `make deb`): debhelper builds it, lintian
# checks it. tests/integration/test_deb.py installs it and checks its unit
# with systemd-analyze, which is in systemd (absent from container images;
# installing it starts nothing there).
DEB="$BUILD debhelper lintian"
# gnuplot-nox draws the soak run's resource lines (make soak, make soak-ci).
TEST="$DEMO libcmocka-dev dovecot-pop3d dovecot-lmtpd python3-pytest procps
clang libclang-rt-14-dev haproxy valgrind debhelper lintian systemd gnuplot-nox"

PROFILE=${1:-test}
case "$PROFILE" in
    demo) PACKAGES=$DEMO ;;
    deb) PACKAGES=$DEB ;;
    test)
        PACKAGES=$TEST
        # The migration tests' real mail comes from the npm registry; nodejs
        # images often bring npm themselves, Debian's package otherwise.
        command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"
        ;;
    *)
        echo "usage: $0 [demo|deb|test]" >&2
        exit 2
        ;;
esac
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

# What the test profile needs besides packages, once they are in: real mail
# for the migration tests (no apt involved).
install_test_data() {
    if [ "$PROFILE" = test ]; then
        "$(dirname "$0")/install-corpus.sh"
    fi
}

if [ -z "$missing" ]; then
    install_test_data
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
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q

# The simulation runs without --no-remove, so that apt says what it would
# remove ("Remv <package> [<version>]") instead of only failing.
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! plan=$($SUDO env LC_ALL=C DEBIAN_FRONTEND=noninteractive \
        apt-get -s install -q --no-install-recommends $missing 2>&1); then
    printf '%s\n' "$plan" | tail -n 20 >&2
    echo "install-deps: apt cannot install$missing (above); nothing was changed." >&2
    exit 1
fi
removed=$(printf '%s\n' "$plan" | sed -n 's/^Remv \([^ ]*\).*/\1/p' | tr '\n' ' ' | sed 's/ *$//')
if [ -n "$removed" ]; then
    cat >&2 <<EOF
install-deps: refusing: installing$missing would REMOVE: $removed
install-deps: nothing was installed or removed.
  apt removes these because they conflict with a package popgate needs; most
  likely your IMAP server (Courier or Cyrus) and Dovecot's dovecot-imapd, which
  Debian does not install side by side (both provide imap-server). popgate's
  demo and tests start a private Dovecot and never use the system's services.
  What to do:
  - run \`make demo\` / \`make test\` in a container or VM instead, e.g.
      docker run --rm -it -v "\$PWD":/src -w /src debian:12 sh -c 'apt-get update && apt-get install -y --no-remove make && make demo'
  - or, if this machine does not need $removed, remove it yourself
    (apt-get remove $removed) and run this again.
  To see apt's plan: apt-get -s install$missing
EOF
    exit 1
fi

POLICY=${POPGATE_POLICY_RC_D:-/usr/sbin/policy-rc.d}   # tests point it elsewhere
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

# --no-remove: should the package database have changed since the simulation,
# apt fails rather than uninstall anything.
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -q -y --no-install-recommends --no-remove $missing; then
    echo "install-deps: apt-get failed (above). It was told never to remove a package" \
         "(--no-remove); if it needed to, see: apt-get -s install$missing" >&2
    exit 1
fi

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

install_test_data
