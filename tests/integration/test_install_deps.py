"""deploy/dev/install-deps.sh never removes a package (issue 13, item 1).

The script runs against fakes on PATH (apt-get, dpkg-query, sudo, systemctl,
service), so nothing on this machine is installed, removed or started: the
fake dpkg-query says which packages are missing, the fake apt-get records every
call and, for `apt-get -s`, prints the plan the test chose (with or without a
`Remv` line, in apt's own format).
"""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "dev" / "install-deps.sh"

FAKE_DPKG_QUERY = """#!/bin/sh
# dpkg-query -W -f=FORMAT PKG...: every package is installed except $FAKE_MISSING
shift 2
for p in "$@"; do
    case " $FAKE_MISSING " in
        *" $p "*) echo "$p not-installed" ;;
        *) echo "$p installed" ;;
    esac
done
"""

FAKE_APT_GET = """#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case " $* " in
    *" -s "*)
        if [ -n "${FAKE_REMV:-}" ]; then
            echo "The following packages will be REMOVED:"
            echo "  $FAKE_REMV"
            echo "Remv $FAKE_REMV [5.0.13+1.0.16-3+b6]"
        fi
        for p in $FAKE_MISSING; do echo "Inst $p (1.0 Debian:12 [amd64])"; done
        exit 0 ;;
    *" install "*) exit "${FAKE_INSTALL_STATUS:-0}" ;;
esac
exit 0
"""

# Runs the command as is: the test's own user, never root's powers.
FAKE_SUDO = '#!/bin/sh\nexec "$@"\n'
FAKE_SERVICE = '#!/bin/sh\necho "$(basename "$0") $*" >> "$FAKE_LOG"\n'


def run_script(tmp_path, missing, remv="", install_status=0, profile=None):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("apt-get", FAKE_APT_GET),
                       ("sudo", FAKE_SUDO), ("systemctl", FAKE_SERVICE), ("service", FAKE_SERVICE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "apt.log"
    log.write_text("")
    policy = tmp_path / "policy-rc.d"
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
               FAKE_MISSING=" ".join(missing), FAKE_REMV=remv, FAKE_LOG=str(log),
               FAKE_INSTALL_STATUS=str(install_status), POPGATE_POLICY_RC_D=str(policy))
    env.pop("EXTRA_PACKAGES", None)
    args = [str(SCRIPT)] + ([profile] if profile else [])
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    calls = [line.split() for line in log.read_text().splitlines()]
    return r, calls, policy


def installs(calls):
    """The real installs: apt-get install without -s."""
    return [c for c in calls if "install" in c and "-s" not in c]


def test_conflict_refuses_and_names_the_package(tmp_path):
    r, calls, policy = run_script(tmp_path, ["dovecot-imapd", "mpop"], remv="courier-imap")
    assert r.returncode != 0
    assert "courier-imap" in r.stderr and "REMOVE" in r.stderr, r.stderr
    assert "nothing was installed or removed" in r.stderr
    # What to do: a container, or remove it knowingly.
    assert "container" in r.stderr and "apt-get remove courier-imap" in r.stderr
    sims = [c for c in calls if "-s" in c]
    assert sims and "dovecot-imapd" in sims[0], calls
    assert installs(calls) == [], f"apt-get install ran despite the conflict: {calls}"
    assert not policy.exists()


def test_install_never_removes(tmp_path):
    r, calls, policy = run_script(tmp_path, ["mpop", "fetchmail"])
    assert r.returncode == 0, r.stderr
    real = installs(calls)
    assert len(real) == 1, calls
    assert "--no-remove" in real[0] and "-y" in real[0]
    assert {"mpop", "fetchmail"} <= set(real[0])
    # The simulation came first; policy-rc.d was in place only while apt ran.
    assert calls.index(real[0]) > next(i for i, c in enumerate(calls) if "-s" in c)
    assert not policy.exists()


def test_no_remove_failure_is_explained(tmp_path):
    # The database changed between the simulation and the install: apt-get
    # --no-remove fails instead of removing, and the script says why.
    r, calls, _ = run_script(tmp_path, ["mpop"], install_status=100)
    assert r.returncode != 0
    assert "--no-remove" in r.stderr and "apt-get -s install mpop" in r.stderr, r.stderr


def test_nothing_missing_touches_nothing(tmp_path):
    r, calls, _ = run_script(tmp_path, [])
    assert r.returncode == 0, r.stderr
    assert calls == []


def test_demo_installs_only_what_the_demo_needs(tmp_path):
    test_only = ["libcmocka-dev", "clang", "libclang-rt-14-dev", "valgrind", "haproxy",
                 "python3-pytest", "dovecot-pop3d", "dovecot-lmtpd"]
    demo = ["gcc", "make", "libev-dev", "libinih-dev", "dovecot-imapd", "redis-server",
            "python3", "openssl", "curl", "fetchmail", "mpop"]
    r, calls, _ = run_script(tmp_path, demo + test_only, profile="demo")
    assert r.returncode == 0, r.stderr
    (real,) = installs(calls)
    assert set(demo) <= set(real) and not set(test_only) & set(real), real
    # The services this run installed are stopped, never left running.
    assert any("dovecot" in c for c in calls if c[0] in ("systemctl", "service")), calls
    # `make test` installs the rest.
    r, calls, _ = run_script(tmp_path, test_only, profile="test")
    assert r.returncode == 0, r.stderr
    (real,) = installs(calls)
    assert set(test_only) <= set(real)


def test_deb_installs_the_build_and_packaging_tools_only(tmp_path):
    deb = ["gcc", "make", "libev-dev", "libssl-dev", "debhelper", "lintian"]
    servers = ["dovecot-imapd", "redis-server", "libcmocka-dev", "systemd"]
    r, calls, _ = run_script(tmp_path, deb + servers, profile="deb")
    assert r.returncode == 0, r.stderr
    (real,) = installs(calls)
    assert set(deb) <= set(real) and not set(servers) & set(real), real
    # `make test` builds, installs and checks the package (test_deb.py):
    # the test profile has the packaging tools and systemd-analyze too.
    r, calls, _ = run_script(tmp_path, ["debhelper", "lintian", "systemd"], profile="test")
    assert r.returncode == 0, r.stderr
    (real,) = installs(calls)
    assert {"debhelper", "lintian", "systemd"} <= set(real)


def test_unknown_profile_is_a_usage_error(tmp_path):
    r, calls, _ = run_script(tmp_path, ["mpop"], profile="everything")
    assert r.returncode == 2 and "usage" in r.stderr
    assert calls == []
