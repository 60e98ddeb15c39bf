#!/usr/bin/env python3
"""Cyrus IMAP 3.6 (Debian 12 cyrus-imapd, cyrus-pop3d) for the test suite,
unpacked into a private root (private_root.py says why nothing is installed).

    python3 deploy/dev/servers/cyrus.py          # fetch and unpack if needed, print the root

CyrusBed.start() runs this on first use (about 7 s with the download; well
under a second when the root is there), so a fresh checkout needs nothing
else; run it by hand to fetch ahead of a test run.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import private_root  # noqa: E402

NAME = "cyrus-3.6"
# sasl2-bin: saslpasswd2, to write the private sasldb the servers read.
PACKAGES = ["cyrus-common", "cyrus-imapd", "cyrus-pop3d", "sasl2-bin"]
# libclamav12 (7 MB) serves only cyr_virusscan, which the tests never run;
# ensure_root() checks with ldd that the binaries below lack nothing.
SKIP = ["libclamav12"]
BIN = "usr/lib/cyrus/bin"
BINARIES = [f"{BIN}/master", f"{BIN}/imapd", f"{BIN}/pop3d", f"{BIN}/idled",
            f"{BIN}/ctl_cyrusdb", "usr/sbin/saslpasswd2"]
SHIM_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "syslog_to_file.c")


class Install:
    """Where the pieces are: root, bin (Cyrus's server binaries), lib_dir,
    saslpasswd2, syslog_shim (the LD_PRELOAD object that puts Cyrus's
    syslog lines into a file)."""

    def __init__(self, root, syslog_shim):
        self.root = root
        self.bin = os.path.join(root, BIN)
        self.lib_dir = private_root.lib_dir(root)
        self.saslpasswd2 = os.path.join(root, "usr", "sbin", "saslpasswd2")
        self.syslog_shim = syslog_shim


def ensure_installed():
    root = private_root.ensure_root(NAME, PACKAGES, BINARIES, skip=SKIP)
    shim = private_root.compile_shared_object(SHIM_SOURCE, os.path.dirname(root))
    return Install(root, shim)


if __name__ == "__main__":
    print(ensure_installed().root)
