#!/bin/sh
# Puts Courier-IMAP 5.0 and Courier's POP3 daemon (Debian 12 packages) into a
# private root for the test suite, without installing them:
#
#     deploy/dev/servers/courier.sh [ROOT]
#
# ROOT defaults to $COURIER_ROOT, else build/servers/courier in the checkout.
# Prints ROOT on success. Idempotent, and fast when ROOT is complete (a stamp
# file names the packages it holds; apt is not asked again).
#
# Why not `apt-get install`: in Debian 12 courier-imap and courier-pop conflict
# with dovecot-imapd / dovecot-pop3d (all provide imap-server / pop3-server),
# so apt would remove the Dovecot the rest of the suite runs on, and it would
# start Courier's services on ports 143 and 110. Instead the .debs are fetched
# with `apt-get download` (verified against the signed archive like any apt
# download) and unpacked with `dpkg -x`; dpkg's database, /etc and /usr stay
# as they were. deploy/dev/servers/courier_bed.py runs the daemons from ROOT
# inside a private mount namespace that shows ROOT's /usr over the real one.
#
# The shared libraries those binaries load from the host are installed with apt
# if missing (they conflict with nothing), after a dry run that must remove
# nothing, and with --no-remove.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
ROOT=${1:-${COURIER_ROOT:-$REPO/build/servers/courier}}

# Unpacked into ROOT. courier-authlib holds authdaemond and libcourierauth*,
# courier-authlib-userdb the userdb module (authentication from a private
# userdb.dat, no system accounts, no PAM). libgamin0 and libltdl7 are only
# libraries, but not installed on a build machine; unpacking them is enough.
# gamin's gam_server is the file-alteration monitor imapd's libfam asks for at
# every LOGIN and SELECT; without it each of them waits 1.2 s for libgamin to
# give up (Debian's courier-imap depends on gamin for that reason).
# Not taken though courier-base depends on them: courier-authdaemon (only an
# init script and a wrapper around authdaemond), gnutls-bin (certtool for
# mkimapdcert; the test bed makes its certificate with openssl).
PACKAGES="courier-imap courier-pop courier-base courier-authlib courier-authlib-userdb
libcourier-unicode4 libgamin0 libltdl7 gamin"
# Loaded from the host by the binaries above (ldd), or used by the test bed.
HOST_PACKAGES="libgdbm6 libidn12 libgnutls30 libpcre3 libcrypt1 libpam0g libstdc++6 libglib2.0-0
openssl"

# shellcheck disable=SC2086,SC2116 # echo joins the list's lines with single spaces
stamp_text=$(echo "popgate courier root v1:" $PACKAGES)
STAMP="$ROOT/.popgate-complete"

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "courier.sh: $1 needs root" >&2
        exit 1
    fi
}

# -- host libraries ------------------------------------------------------------
# shellcheck disable=SC2086 # word splitting of the package list is intended
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $HOST_PACKAGES 2>/dev/null || true)
missing=""
for p in $HOST_PACKAGES; do
    if ! printf '%s\n' "$installed" | grep -qx "$p installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    need_root "installing$missing"
    echo "courier.sh: installing$missing" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    # A dry run first: nothing may be removed (Dovecot above all).
    # shellcheck disable=SC2086
    if DEBIAN_FRONTEND=noninteractive apt-get -s install --no-install-recommends --no-remove $missing \
            | grep -q '^Remv '; then
        echo "courier.sh: installing$missing would remove packages; not doing it" >&2
        exit 1
    fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends --no-remove \
        $missing >&2
fi

# -- the private root ----------------------------------------------------------
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$stamp_text" ]; then
    echo "$ROOT"
    exit 0
fi

mkdir -p "$(dirname "$ROOT")"
WORK=$(mktemp -d "$ROOT.tmp.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/debs" "$WORK/root"

download() {
    # Run as root, apt drops to _apt for downloads into a directory it can
    # write; ours is private, so download as root (the .debs are still checked
    # against the archive's signed hashes).
    # shellcheck disable=SC2086
    (cd "$WORK/debs" && apt-get download -q -o APT::Sandbox::User=root $PACKAGES) >&2
}
if ! download; then
    # A fresh machine may have no package lists yet.
    need_root "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    download
fi
for deb in "$WORK"/debs/*.deb; do
    dpkg -x "$deb" "$WORK/root"
done
for f in usr/sbin/couriertcpd usr/lib/courier/courier/imaplogin usr/bin/imapd \
         usr/lib/courier/courier/courierpop3login usr/lib/courier/courier/courierpop3d \
         usr/lib/courier/courier-authlib/authdaemond usr/lib/courier-authlib/libauthuserdb.so \
         usr/lib/courier/courier-authlib/makedatprog usr/bin/couriertls; do
    if [ ! -e "$WORK/root/$f" ]; then
        echo "courier.sh: $f missing from the unpacked packages" >&2
        exit 1
    fi
done
printf '%s\n' "$stamp_text" > "$WORK/root/.popgate-complete"

# Replace ROOT in one rename; a concurrent run may have finished first.
rm -rf "$ROOT.old"
if [ -e "$ROOT" ]; then
    mv -T "$ROOT" "$ROOT.old"
fi
if ! mv -T "$WORK/root" "$ROOT" 2>/dev/null; then
    if [ ! -f "$STAMP" ]; then
        echo "courier.sh: could not move the unpacked root to $ROOT" >&2
        exit 1
    fi
fi
rm -rf "$ROOT.old"
echo "$ROOT"
