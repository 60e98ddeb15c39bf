"""The Debian package (issue 19): `make deb` builds it, lintian passes it,
`dpkg -i` installs it, the installed popgate serves a real POP3 session from
the test bed's Dovecot and Redis, its unit passes `systemd-analyze verify`,
and `dpkg --purge` leaves none of its files behind.

The package is built once per run, by `make deb` (into dist/), unless
POPGATE_DEB names a .deb already built. Installing needs root (CI runs as
root; elsewhere sudo -n). The test refuses to run where popgate is already
installed (as a package, or by hand under /etc/popgate or /usr/sbin), so
that it never purges an administrator's installation; whatever happens, the
package it installed is purged at the end. It installs and removes no other
package.
"""

import grp
import os
import pwd
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from messages import expected_retr
from testbed import format_ini

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "VERSION").read_text().strip()
SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]
UNIT = "/lib/systemd/system/popgate.service"
CONF = "/etc/popgate/popgate.conf"
MSGS = [
    b"From: a@example.org\r\nSubject: packaged\r\n\r\nfrom the installed popgate\r\n",
    b"From: b@example.org\r\nSubject: two\r\n\r\n.leading dot\r\nline 2\r\n",
]


def run(cmd, timeout=120, check=True, root=False, input=None):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    # Under `make integration` these name the outer make's job server, whose
    # descriptors this child does not inherit; `make deb` sets its own.
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(var, None)
    r = subprocess.run((SUDO if root else []) + list(cmd), capture_output=True, text=True,
                       timeout=timeout, env=env,
                       **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}))
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def dpkg(*args):
    """dpkg as root, waiting while another apt or dpkg holds its lock."""
    deadline = time.monotonic() + 300
    while True:
        r = run(["dpkg", *args], check=False, root=True)
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > deadline:
            break
        time.sleep(2)
    if r.returncode != 0:
        raise AssertionError(f"dpkg {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def package_status():
    """{package: status} of every package dpkg knows."""
    r = run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"])
    return dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)


def installed_packages():
    return {p for p, s in package_status().items() if s == "installed"}


@pytest.fixture(scope="module")
def deb():
    """Path of the package under test: POPGATE_DEB, else built by `make deb`."""
    if os.environ.get("POPGATE_DEB"):
        path = Path(os.environ["POPGATE_DEB"]).resolve()
    else:
        run(["make", "-s", "--no-print-directory", "-C", str(REPO), "deb"], timeout=1200)
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        path = REPO / "dist" / f"popgate_{VERSION}_{arch}.deb"
    assert path.is_file(), f"no package at {path}"
    return path


@pytest.fixture(scope="module")
def installed(deb):
    """The package installed with dpkg -i; purged at the end in any case.
    Yields the list of paths it installed (dpkg -L)."""
    status = package_status().get("popgate", "not-installed")
    assert status == "not-installed", (
        f"the package popgate is on this machine ({status}): this test installs and "
        "purges its own, and will not touch yours")
    for path in ("/etc/popgate", "/usr/sbin/popgate", "/usr/bin/popgate-admin",
                 "/usr/bin/pop3-uidl-export"):
        assert not os.path.lexists(path), (
            f"{path} exists: popgate is installed by hand here; this test's "
            "dpkg --purge would take it away, so it refuses to run")
    before = installed_packages()
    try:
        dpkg("-i", str(deb))
        files = [ln for ln in dpkg("-L", "popgate").stdout.splitlines() if ln.startswith("/")]
        yield files
    finally:
        if package_status().get("popgate", "not-installed") != "not-installed":
            dpkg("--purge", "popgate")
        # dpkg -i and --purge took no other package away.
        gone = before - installed_packages()
        assert not gone, f"packages removed during the test: {sorted(gone)}"


# -- the package as built ---------------------------------------------------
def test_package_is_named_and_versioned_from_version_file(deb):
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    assert deb.name == f"popgate_{VERSION}_{arch}.deb"
    fields = run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture"]).stdout
    assert fields.split() == ["Package:", "popgate", "Version:", VERSION, "Architecture:", arch]


def test_lintian_reports_no_error_and_no_warning(deb):
    r = run(["lintian", "--fail-on", "error,warning", str(deb)], timeout=300, check=False)
    findings = [ln for ln in r.stdout.splitlines() if re.match(r"[EW]: ", ln)]
    assert r.returncode == 0 and not findings, r.stdout + r.stderr


def test_package_contents_and_relations(deb):
    listing = run(["dpkg-deb", "-c", str(deb)]).stdout
    paths = {ln.split()[-1].lstrip(".") for ln in listing.splitlines()}
    for path in ("/usr/sbin/popgate", "/usr/bin/popgate-admin", CONF, UNIT,
                 "/usr/lib/sysusers.d/popgate.conf",
                 "/usr/share/man/man8/popgate.8.gz", "/usr/share/man/man8/popgate-admin.8.gz",
                 "/usr/share/man/man5/popgate.conf.5.gz",
                 "/usr/share/doc/popgate/README.md.gz", "/usr/share/doc/popgate/changelog.gz",
                 "/usr/share/doc/popgate/copyright", "/usr/share/doc/popgate/README.Debian",
                 "/usr/bin/pop3-uidl-export", "/usr/share/man/man1/pop3-uidl-export.1.gz"):
        assert path in paths, f"{path} not in the package:\n{listing}"
    # Nothing of /usr/local, and nothing of the build tree.
    assert not [p for p in paths if p.startswith("/usr/local") or "/build/" in p], listing

    control = run(["dpkg-deb", "-f", str(deb), "Depends", "Recommends"]).stdout
    # ${shlibs:Depends}: the libraries the binaries link, found by dpkg-shlibdeps.
    for lib in ("libssl3", "libev4", "libhiredis0.14", "libinih1", "libc6"):
        assert re.search(rf"\b{re.escape(lib)} \(>=", control), control
    assert re.search(r"^Recommends: redis-server$", control, re.M), control

    conffiles = subprocess.run(f"dpkg-deb --ctrl-tarfile '{deb}' | tar -xOf - ./conffiles",
                               shell=True, capture_output=True, text=True, check=True).stdout
    assert conffiles.split() == [CONF]


# -- installed --------------------------------------------------------------
def test_installed_programs_files_and_user(installed):
    assert run(["/usr/sbin/popgate", "-V"]).stdout == f"popgate {VERSION}\n"
    assert run(["/usr/bin/popgate-admin", "-V"]).stdout == f"popgate-admin (popgate) {VERSION}\n"
    export = run(["/usr/bin/pop3-uidl-export", "--help"])
    assert export.stdout.startswith("usage: pop3-uidl-export")
    assert Path("/usr/bin/pop3-uidl-export").read_text().startswith("#!/usr/bin/python3\n")

    user = pwd.getpwnam("popgate")
    assert user.pw_shell == "/usr/sbin/nologin" and user.pw_uid < 1000, user
    st = os.stat(CONF)
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert st.st_uid == 0 and grp.getgrgid(st.st_gid).gr_name == "popgate"

    # The group reads the configuration, others do not: the popgate user gets
    # as far as the file it names (the TLS certificate), nobody not even that.
    as_popgate = run(["runuser", "-u", "popgate", "--", "/usr/sbin/popgate", "-t", "-c", CONF],
                     check=False, root=True)
    assert as_popgate.returncode != 0
    assert "/etc/popgate/tls/fullchain.pem" in as_popgate.stdout + as_popgate.stderr, as_popgate
    as_nobody = run(["runuser", "-u", "nobody", "--", "/usr/sbin/popgate", "-t", "-c", CONF],
                    check=False, root=True)
    assert as_nobody.returncode != 0
    assert "Permission denied" in as_nobody.stdout + as_nobody.stderr, as_nobody


def test_shipped_config_is_refused_until_filled_in_and_service_not_enabled(installed):
    # README.Debian: installed disabled, not started; the shipped example
    # names a certificate the administrator has yet to provide.
    r = run(["/usr/sbin/popgate", "-t", "-c", CONF], check=False)
    assert r.returncode == 1, r
    assert "/etc/popgate/tls/fullchain.pem" in r.stdout + r.stderr, r
    assert not os.path.lexists("/etc/systemd/system/multi-user.target.wants/popgate.service")


def test_installed_unit_verifies_and_reloads_with_sighup(installed):
    r = run(["systemd-analyze", "verify", UNIT], check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "popgate.service" not in r.stdout + r.stderr, r.stdout + r.stderr
    unit = Path(UNIT).read_text()
    assert "ExecStart=/usr/sbin/popgate -c /etc/popgate/popgate.conf\n" in unit
    assert "ExecStartPre=/usr/sbin/popgate -t -c /etc/popgate/popgate.conf\n" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID\n" in unit
    assert re.search(r"^User=popgate$", unit, re.M) and re.search(r"^ProtectSystem=strict$", unit, re.M)
    # The sandbox as installed: systemd's own rating, offline (deploy/README.md
    # gives 1.4 "OK"; anything above 2.0 means a protection went missing).
    r = run(["systemd-analyze", "security", "--offline=yes", UNIT], timeout=60)
    level = re.search(r"Overall exposure level for popgate.service: (\d+\.\d+) (\w+)", r.stdout)
    assert level and float(level.group(1)) <= 2.0, r.stdout[-500:]


def test_installed_popgate_checks_its_config_and_serves_pop3(installed, testbed, mailbox,
                                                            session):
    """The installed popgate with /etc/popgate/popgate.conf filled in as an
    administrator would, for the test bed's Dovecot and Redis."""
    mailbox.seed(MSGS)
    pg = testbed.popgate(binary="/usr/sbin/popgate")
    pg.config_path = CONF
    text = format_ini(pg.sections)
    run(["tee", CONF], input=text, root=True)
    # Edited in place: still the package's conffile, still root:popgate 0640.
    st = os.stat(CONF)
    assert stat.S_IMODE(st.st_mode) == 0o640 and grp.getgrgid(st.st_gid).gr_name == "popgate"
    r = run(["/usr/sbin/popgate", "-t", "-c", CONF], check=False)
    assert r.returncode == 0, r
    try:
        pg.start()
        c = session(pg, mailbox)
        assert c.stat() == (len(MSGS), sum(len(m) for m in MSGS))
        for n, m in enumerate(MSGS, 1):
            assert c.retr(n) == expected_retr(m)
        assert c.quit().startswith(b"+OK")
    finally:
        # Exit status 0 after SIGTERM, else the failure names the log.
        pg.stop(check=True)


# -- purged -----------------------------------------------------------------
def test_purge_leaves_no_file_behind(installed):
    dpkg("--purge", "popgate")
    assert package_status().get("popgate", "not-installed") == "not-installed"
    # Directories such as /usr/sbin belong to other packages too; every file
    # and link of the package, and its own directories, are gone.
    left = [p for p in installed if os.path.lexists(p) and not os.path.isdir(p)]
    assert not left, left
    # /etc/popgate/popgate.conf too, edited though it was (the test above).
    for own in ("/etc/popgate", "/usr/share/doc/popgate"):
        assert not os.path.lexists(own), own
    state = [str(p) for d in ("/var/lib/systemd/deb-systemd-helper-enabled",
                              "/var/lib/systemd/deb-systemd-helper-masked")
             for p in Path(d).rglob("*popgate*")] if Path("/var/lib/systemd").is_dir() else []
    assert not state, state
    # The system user stays, as Debian keeps system users on purge
    # (README.Debian): files it owns may outlive the package.
    assert pwd.getpwnam("popgate").pw_shell == "/usr/sbin/nologin"
