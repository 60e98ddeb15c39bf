"""A private root with Debian packages unpacked in it, for servers the test
suite runs but the machine must not have installed.

In Debian 12 cyrus-imapd and courier-imap each conflict with dovecot-imapd
(all provide imap-server): `apt-get install` of either removes Dovecot. And
installing cyrus-common alone (no conflict) would still pull in an MTA
(exim4) and packaged services that start at once. So nothing here is
installed: `apt-get download` fetches the .debs and `dpkg -x` unpacks them
into <cache>/<name>/root. The servers run from there with LD_LIBRARY_PATH
pointing at the root's library directory; the packaged services never run.

Shared libraries the packages need and the machine lacks (lib* packages in
their Depends, followed down) are unpacked into the same root. Nothing asks
apt to install or remove anything; `apt-get update` runs only when apt does
not know a package yet (a fresh machine), and only as root.

ensure_root() is idempotent and quick when the root is there: one stat of a
stamp file and of the binaries asked for. Concurrent test runs serialise on
a lock file; a root is built in a temporary directory and renamed into place,
so a half-built root is never used.

The cache lives in build/servers/ of the checkout (git-ignored), or in
$POPGATE_SERVERS_CACHE.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sysconfig
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
APT_TIMEOUT = 600   # seconds for apt-get update/download on a slow mirror
STAMP = ".popgate-root"


def cache_dir():
    return os.environ.get("POPGATE_SERVERS_CACHE") or os.path.join(REPO, "build", "servers")


def lib_dir(root):
    """The multiarch library directory of a root (where the .so files land)."""
    return os.path.join(root, "usr", "lib", sysconfig.get_config_var("MULTIARCH")
                        or "x86_64-linux-gnu")


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=APT_TIMEOUT,
                       env=dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive"), **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def _installed(packages):
    """The subset of packages dpkg has installed."""
    if not packages:
        return set()
    r = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n", *packages],
                       capture_output=True, text=True)
    return {ln.split()[0].split(":")[0] for ln in r.stdout.splitlines()
            if ln.endswith(" installed")}


def _apt_knows(packages):
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *packages],
                       capture_output=True, text=True)
    return r.returncode == 0


def _ensure_apt_lists(packages):
    """apt-get update, once, when apt does not know the packages (fresh CI)."""
    if _apt_knows(packages):
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"apt does not know {' '.join(packages)}; run `apt-get update` as root")
    _run(["apt-get", "update", "-q"])
    if not _apt_knows(packages):
        raise RuntimeError(f"apt does not know {' '.join(packages)} even after apt-get update")


def _direct_lib_depends(packages):
    """{package: [lib* packages it Depends/Pre-Depends on]} from apt-cache.
    For an alternative (A | B) the first one is taken, as apt would."""
    out = _run(["apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts",
                "--no-breaks", "--no-replaces", "--no-enhances", *packages])
    deps = {}
    current = None
    in_alternative = False
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.strip()
            deps[current] = []
            in_alternative = False
            continue
        s = line.strip()
        kind, _, name = s.partition(": ")
        alt_start = kind.startswith("|")
        kind = kind.lstrip("|")
        if kind not in ("Depends", "PreDepends"):
            continue
        if in_alternative:
            # The rest of an alternative: apt takes the first choice.
            in_alternative = alt_start
            continue
        in_alternative = alt_start
        if name.startswith("<") or not name.startswith("lib"):
            continue
        deps[current].append(name.split(":")[0])
    return deps


def missing_libraries(packages, skip=()):
    """lib* packages the packages need, directly or through each other, that
    are not installed here (skip: ones known not to be needed by the
    binaries used, e.g. an anti-virus library for one tool)."""
    wanted, todo = set(), list(packages)
    seen = set(todo)
    while todo:
        deps = _direct_lib_depends(todo)
        todo = []
        new = {d for ds in deps.values() for d in ds} - seen - set(skip)
        seen |= new
        new -= _installed(new)
        wanted |= new
        todo = sorted(new)
    return sorted(wanted)


def unresolved_libraries(root, binaries):
    """Shared objects ldd cannot find for the binaries, with the root's
    library directory on LD_LIBRARY_PATH: "binary: libx.so.1" strings."""
    env = dict(os.environ, LD_LIBRARY_PATH=lib_dir(root))
    problems = []
    for b in binaries:
        r = subprocess.run(["ldd", b], capture_output=True, text=True, env=env)
        problems += [f"{b}: {ln.split()[0]}" for ln in r.stdout.splitlines() if "not found" in ln]
    return problems


def ensure_root(name, packages, binaries, skip=()):
    """Return the path of <cache>/<name>/root holding packages (and the
    missing libraries they need) unpacked; build it if it is not there.
    binaries: paths relative to the root that must exist and resolve all
    their libraries afterwards."""
    base = os.path.join(cache_dir(), name)
    root = os.path.join(base, "root")
    stamp = os.path.join(root, STAMP)

    def ready():
        return os.path.exists(stamp) and all(
            os.path.exists(os.path.join(root, b)) for b in binaries)

    if ready():
        return root
    os.makedirs(base, exist_ok=True)
    with open(os.path.join(base, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # another test run may be building it
        if ready():
            return root
        _ensure_apt_lists(packages)
        libs = missing_libraries(packages, skip)
        work = tempfile.mkdtemp(prefix="build-", dir=base)
        try:
            debs = os.path.join(work, "debs")
            new_root = os.path.join(work, "root")
            os.makedirs(debs)
            os.makedirs(new_root)
            # As root apt warns that it cannot drop to _apt in a private
            # directory and downloads as root; the files are checked against
            # the signed package lists either way.
            _run(["apt-get", "download", "-q", *packages, *libs], cwd=debs)
            names = sorted(os.listdir(debs))
            for deb in names:
                _run(["dpkg", "-x", os.path.join(debs, deb), new_root])
            full = [os.path.join(new_root, b) for b in binaries]
            absent = [b for b in full if not os.path.exists(b)]
            if absent:
                raise RuntimeError(f"{name}: not in the packages: {absent}")
            problems = unresolved_libraries(new_root, full)
            if problems:
                raise RuntimeError(f"{name}: libraries still missing: {problems}")
            with open(os.path.join(new_root, STAMP), "w") as f:
                f.write("\n".join(names) + "\n")
            if os.path.exists(root):
                shutil.rmtree(root)
            os.rename(new_root, root)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return root


def compile_shared_object(source, out_dir):
    """Compile one C file into <out_dir>/<name>-<hash>.so unless it is there
    (a changed source gets a new name). Returns the path."""
    stem = os.path.splitext(os.path.basename(source))[0]
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    so = os.path.join(out_dir, f"{stem}-{digest}.so")
    if os.path.exists(so):
        return so
    cc = os.environ.get("CC", "cc")
    tmp = f"{so}.{os.getpid()}.tmp"
    _run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", tmp, source])
    os.rename(tmp, so)
    return so
