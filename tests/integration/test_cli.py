"""Command-line habits of popgate and popgate-admin (issue 13, item 5): GNU
conventions (--help and --version on stdout, exit 0; a usage error on stderr,
exit 2 for popgate), one version number for both (the file VERSION), and
manual pages that name every option the programs list.

popgate is POPGATE_BIN (the ASan build under `make integration`), else
./popgate; popgate-admin as in test_admin.py.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAN = REPO / "deploy" / "man"


def popgate_binary():
    return os.path.abspath(os.environ.get("POPGATE_BIN") or REPO / "popgate")


def admin_binary():
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    beside = Path(popgate_binary()).with_name("popgate-admin")
    return str(beside if beside.exists() else REPO / "popgate-admin")


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


def version():
    v = (REPO / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", v), v
    return v


def test_popgate_help_and_version():
    for flag in ("--help", "-h"):
        r = run(popgate_binary(), flag)
        assert r.returncode == 0 and r.stderr == "", (flag, r)
        assert r.stdout.startswith("usage: popgate -c FILE")
        assert "--version" in r.stdout and "--config" in r.stdout
    for flag in ("--version", "-V"):
        r = run(popgate_binary(), flag)
        assert r.returncode == 0 and r.stderr == ""
        assert r.stdout == f"popgate {version()}\n"
    # make version reads the same file.
    made = subprocess.run(["make", "-s", "--no-print-directory", "-C", str(REPO), "version"], capture_output=True,
                          text=True, timeout=60)
    assert made.stdout.strip() == version(), made


def test_popgate_usage_errors():
    for args, said in ((["--bogus"], "unrecognized option"), ([], "no configuration file"),
                       (["-c", "x.conf", "extra"], "unexpected argument extra"),
                       (["-c"], "requires an argument")):
        r = run(popgate_binary(), *args)
        assert r.returncode == 2, (args, r)
        assert r.stdout == ""
        assert said in r.stderr and "Try 'popgate --help'" in r.stderr, (args, r.stderr)
    # --config is -c.
    r = run(popgate_binary(), "--check", "--config=/nonexistent/popgate.conf")
    assert r.returncode == 1 and "/nonexistent/popgate.conf" in r.stderr


def test_admin_help_and_version():
    r = run(admin_binary(), "--version")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == f"popgate-admin (popgate) {version()}\n"
    # No configuration or Redis needed, whatever else is on the line.
    r = run(admin_binary(), "-c", "/nonexistent.conf", "device", "list", "alice", "--version")
    assert r.returncode == 0 and r.stdout.endswith(f" {version()}\n")
    r = run(admin_binary(), "--help")
    assert r.returncode == 0 and "--version" in r.stdout
    # Every key map set takes, mapping included.
    keys = re.search(r"KEY: (.*?)\(values", r.stdout, re.S).group(1)
    assert "on_dele" in keys
    assert "mapping (the NAME of a [mapping NAME] section)" in r.stdout


def test_man_pages_name_every_option():
    export_tool = REPO / "deploy" / "migration" / "pop3-uidl-export"
    # The export tool is a standalone script (copied anywhere): --help, no --version.
    for command, page, common in (
            ([popgate_binary()], "popgate.8", {"--help", "--version"}),
            ([admin_binary()], "popgate-admin.8", {"--help", "--version"}),
            ([sys.executable, str(export_tool)], "pop3-uidl-export.1", {"--help", "--host"})):
        usage = run(*command, "--help").stdout
        man = (MAN / page).read_text().replace("\\-", "-")
        options = set(re.findall(r"(?<![\w-])--?[a-zA-Z][\w-]*", usage))
        assert common <= options, usage
        missing = sorted(o for o in options if o not in man)
        assert missing == [], f"{page} does not mention {missing}"
