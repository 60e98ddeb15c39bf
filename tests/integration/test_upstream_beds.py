"""The upstream beds themselves (deploy/dev/upstream_beds.py): every server
keeps the interface the cross-server tests rely on, and a bed leaves nothing
running or on disk when it stops."""

import os
import re

import pytest

from conftest import UPSTREAMS, new_mailbox
from messages import served
from testbed import _pid_alive
import upstream_beds

by_server = pytest.mark.parametrize("upstream", UPSTREAMS, indirect=True)


@by_server
def test_seed_stores_exact_bytes_in_order_with_flags(upstream):
    mb = new_mailbox(upstream)
    msgs = [b"Subject: one\r\n\r\nfirst\r\n",
            b"Subject: two\r\n\r\nbare\rcr and 8-bit \xe9\xff\r\nno final newline",
            b"Subject: three\r\n\r\n" + b"x" * 5000 + b"\r\n"]
    mb.seed(msgs[:2])
    mb.seed(msgs[2:], flags="S")
    conn = mb.imap()
    try:
        typ, _ = conn.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        assert typ == "OK"
        got = [(int(re.search(rb"UID (\d+)", item[0]).group(1)),
                b"\\Seen" in item[0], item[1]) for item in data if isinstance(item, tuple)]
    finally:
        conn.logout()
    uids = [u for u, _, _ in got]
    assert uids == sorted(uids) and len(uids) == 3
    # Exact bytes, served as the server serves them (Courier: LF as CRLF).
    assert [body for _, _, body in got] == [served(upstream.kind, m) for m in msgs]
    assert [seen for _, seen, _ in got] == [False, False, True]


@by_server
def test_trash_capabilities_and_popgate_keys(upstream):
    mb = new_mailbox(upstream)
    name = upstream.create_trash(mb.user)
    assert upstream.create_trash(mb.user) == name          # idempotent
    conn = mb.imap()
    try:
        typ, data = conn.list('""', "*")
        assert typ == "OK"
        named = [ln for ln in data if ln and ln.rsplit(b" ", 1)[-1].strip(b'"') == name.encode()]
        trash = [ln for ln in data if ln and b"\\Trash" in ln]
    finally:
        conn.logout()
    assert {"IMAP4REV1", "UIDPLUS"} <= upstream.capabilities
    assert len(named) == 1, data
    if upstream.kind == "courier":
        # No SPECIAL-USE: a plain folder, which popgate's trash_folder names.
        assert "SPECIAL-USE" not in upstream.capabilities
        assert trash == [] and name == "INBOX.Trash", data
    else:
        assert "SPECIAL-USE" in upstream.capabilities
        assert trash == named, data
    up = upstream.popgate_upstream()
    assert up == {"host": "127.0.0.1", "port": upstream.ports["imap"], "tls": "starttls",
                  "ca_file": upstream.cert, "verify": "yes", "verify_name": "localhost"}
    assert os.path.isfile(upstream.cert)
    assert isinstance(upstream.log_tail(5), str)


def processes_mentioning(text):
    """PIDs (live, not zombies) whose command line holds text."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read() and _pid_alive(int(entry)):
                        pids.append(int(entry))
            except OSError:
                pass
    return pids


@pytest.mark.parametrize("kind", [k for k in UPSTREAMS if k != "dovecot"])
def test_bed_stops_everything_it_started(kind):
    """A second bed of the server beside the run's one: stop() ends every
    process it started (all name its private config directory) and removes
    the directory; stop() again is harmless."""
    bed = upstream_beds.BEDS[kind](name=f"{kind}2")
    with bed:
        bed.add_user("stopper", "pw")
        conn = bed.imap("stopper")      # a server child is running now
        directory = bed.dir
        pids = processes_mentioning(directory)
        assert len(pids) >= 2 and os.path.isdir(directory), pids
    assert processes_mentioning(directory) == []
    assert not os.path.exists(directory)
    bed.stop()
    conn.sock.close()   # the server end is gone already
