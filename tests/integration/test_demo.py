"""`make demo` as a new user meets it (issue 13, items 2, 3 and 6).

deploy/dev/demo.py runs from a fresh copy of the repository's tracked files
(what a clone holds, with this checkout's edits) and the built binaries (the
release popgate, as `make demo` uses). The test then drives the commands the
demo printed, exactly as printed: the two-device story (the phone downloads
with fetchmail, the desk sees nothing under `unread`; popgate-admin switches
the user to `new`, the desk downloads with mpop; the phone is reset), the
other curl lines, and both ways to start again (SIGUSR1 and Enter). Ctrl-C,
sent to the process group as a terminal does, must leave no process and no
temporary directory.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import testbed  # noqa: E402

MESSAGES = 20          # what the demo seeds
START_TIMEOUT = 60


def popgate_binary():
    return os.path.abspath(os.environ.get("POPGATE_RELEASE_BIN") or os.environ.get("POPGATE_BIN")
                           or REPO / "popgate")


def admin_binary():
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    if os.environ.get("POPGATE_BIN"):
        beside = Path(os.environ["POPGATE_BIN"]).resolve().with_name("popgate-admin")
        if beside.exists():
            return str(beside)
    return str(REPO / "popgate-admin")


def fresh_copy(dest):
    """The tracked files of the repository, nothing built and nothing
    untracked: what `git clone` gives, with uncommitted edits."""
    r = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True)
    if r.returncode != 0:
        # Not a git checkout (an unpacked release): the demo's own files.
        shutil.copytree(REPO / "deploy" / "dev", dest / "deploy" / "dev")
        return dest
    names = r.stdout.split(b"\0")
    for name in filter(None, names):
        src = REPO / os.fsdecode(name)
        if src.is_file():
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))
    return dest


class DemoProcess:
    def __init__(self, clone, env):
        self.proc = subprocess.Popen(
            [sys.executable, str(clone / "deploy" / "dev" / "demo.py")], cwd=clone, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)  # its own process group, as in a terminal
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_for(self, pattern, timeout, after=0):
        """Index of the first output line from `after` on that matches."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(after, len(self.lines)):
                    line = self.lines[i]
                    if line is None:
                        raise AssertionError(f"demo exited before printing {pattern!r}:\n" + self.text())
                    if re.search(pattern, line):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"demo did not print {pattern!r} within {timeout}s:\n"
                                         + self.text())
                self.cond.wait(left)

    def text(self):
        return "\n".join(ln for ln in self.lines if ln is not None)


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        todo.extend(kid for kid in testbed._children_of(todo.pop()) if kid not in out)
        out.extend(k for k in todo if k not in out)
    return out


@pytest.fixture
def demo(tmp_path):
    for binary in (popgate_binary(), admin_binary()):
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} is missing: `make popgate popgate-admin` builds it", pytrace=False)
    clone = fresh_copy(tmp_path / "clone")
    # The demo's TMPDIR, to see it leaves nothing there: short, because
    # Dovecot's socket paths under it must fit in sun_path (108 bytes).
    # Dovecot's services run as their own users: they must get through it.
    tmp = Path(tempfile.mkdtemp(prefix="pgdt-"))
    tmp.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, POPGATE_BIN=popgate_binary(), POPGATE_ADMIN_BIN=admin_binary(),
               TMPDIR=str(tmp), HOME=str(home))
    d = DemoProcess(clone, env)
    d.tmp, d.env = tmp, env
    try:
        d.wait_for(r"^Press Ctrl-C", START_TIMEOUT)
        yield d
    finally:
        if d.proc.poll() is None:
            os.killpg(d.proc.pid, signal.SIGKILL)
            d.proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def printed_commands(text):
    """The command lines the demo printed (indented, starting with a program
    the user runs), in order."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^ {4}(\S.*)$", line)
        if m and re.match(r"(curl|fetchmail|mpop|kill|\S*popgate-admin) ", m.group(1)):
            out.append(m.group(1))
    return out


def test_demo_tells_the_device_story_and_cleans_up(demo):
    text = demo.text()
    state_dir = re.search(r"state in (\S+)\)", text).group(1)
    assert state_dir.startswith(str(demo.tmp))
    for step in ("1. ", "2. ", "3. ", "4. ", "5. "):
        assert re.search(rf"^{re.escape(step)}", text, re.M), f"step {step} missing:\n{text}"
    cmds = printed_commands(text)

    def one(pattern):
        found = [c for c in cmds if re.search(pattern, c)]
        assert found, f"no printed command matches {pattern!r}:\n{text}"
        return found[0]

    list_phone = one(r"^curl -k pop3s://demo%23phone:demo@127\.0\.0\.1:\d+/$")
    list_desk = one(r"^curl -k pop3s://demo%23desk:demo@127\.0\.0\.1:\d+/$")
    fetchmail = one(r"^fetchmail ")
    mpop = one(r"^mpop ")
    map_new = one(r"popgate-admin -c \S+ map set demo view=new$")
    reset_phone = one(r"popgate-admin -c \S+ device reset demo phone$")
    device_list = one(r"popgate-admin -c \S+ device list demo$")
    stats = one(r"popgate-admin -c \S+ stats$")
    kill = one(r"^kill -USR1 \d+$")
    assert kill == f"kill -USR1 {demo.proc.pid}"
    # The mpop settings are printed as well as written.
    assert re.search(r"^ +user demo#desk$", text, re.M) and re.search(r"^ +port \d+$", text, re.M)

    def run(cmd):
        r = subprocess.run(shlex.split(cmd), env=demo.env, capture_output=True, timeout=120)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert r.returncode == 0, f"{cmd}: exit {r.returncode}\n{out}"
        return r.stdout.decode("utf-8", "replace")

    def listed(cmd):
        return len(re.findall(r"^\d+ \d+\r?$", run(cmd), re.M))

    phone_dir = Path(state_dir) / "phone"
    desk_new = Path(state_dir) / "desk" / "new"

    # 1. Both devices see everything.
    assert (listed(list_phone), listed(list_desk)) == (MESSAGES, MESSAGES)
    # 2. The phone downloads everything; 3. then neither device is offered it.
    run(fetchmail)
    assert len(os.listdir(phone_dir)) == MESSAGES
    assert (listed(list_desk), listed(list_phone)) == (0, 0)
    # 4. View `new`: each device gets each message once; the desk downloads.
    run(map_new)
    assert (listed(list_desk), listed(list_phone)) == (MESSAGES, 0)
    run(mpop)
    assert len(os.listdir(desk_new)) == MESSAGES
    assert listed(list_desk) == 0
    # 5. The phone is reset: it is offered its view again.
    run(reset_phone)
    assert listed(list_phone) == MESSAGES
    devices = run(device_list)
    assert re.search(r"^desk ", devices, re.M) and re.search(r"^phone ", devices, re.M), devices
    assert "total" in run(stats)

    # Start again with the printed kill line: every message unread, no
    # device state, no override (the desk is back to `unread`), no files.
    n = len(demo.lines)
    run(kill)
    demo.wait_for(r"^demo: reset: ", 30, after=n)
    assert (listed(list_phone), listed(list_desk)) == (MESSAGES, MESSAGES)
    assert os.listdir(phone_dir) == [] and os.listdir(desk_new) == []
    # ... and with Enter, after the phone downloaded once more.
    run(fetchmail)
    assert len(os.listdir(phone_dir)) == MESSAGES and listed(list_desk) == 0
    n = len(demo.lines)
    demo.proc.stdin.write(b"\n")
    demo.proc.stdin.flush()
    demo.wait_for(r"^demo: reset: ", 30, after=n)
    assert listed(list_desk) == MESSAGES

    # The other curl lines work as printed.
    for cmd in cmds:
        if cmd.startswith("curl ") and cmd not in (list_phone, list_desk):
            run(cmd)

    # Ctrl-C: the terminal signals the whole foreground process group.
    pg_ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", text.split("One mailbox")[0])]
    kids = descendants(demo.proc.pid)
    assert len(kids) >= 3, kids            # Dovecot (and its children), Redis, popgate
    os.killpg(demo.proc.pid, signal.SIGINT)
    assert demo.proc.wait(timeout=60) == 0, demo.text()
    demo.wait_for(r"^demo: stopped, temporary state removed\.", 5)
    left = [k for k in kids if testbed._pid_alive(k)]
    assert left == [], f"processes left after Ctrl-C: {left}"
    assert not os.path.exists(state_dir)
    assert os.listdir(demo.tmp) == [], os.listdir(demo.tmp)
    assert not any(testbed.port_accepts("127.0.0.1", p) for p in pg_ports)
