"""`popgate -t -c FILE` checks a config and exits 0 (good) or 1 (bad) without
serving; `popgate -c FILE` with a bad config refuses to start.
"""

import socket
import subprocess

import pytest


@pytest.fixture
def make(testbed, popgate_bin):
    made = []

    def build(server=None, upstream=None):
        pg = testbed.popgate(server=server, upstream=upstream, binary=popgate_bin)
        made.append(pg)
        return pg

    yield build
    for pg in made:
        pg.stop(check=False)


def test_check_good_config(make):
    status, out = make().check_config()
    assert status == 0, out


def test_check_does_not_bind(make):
    """-t only reads the config: the ports may be in use by a running popgate."""
    pg = make()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", pg.port))
        busy.listen(1)
        status, out = pg.check_config()
    assert status == 0, out


@pytest.mark.parametrize("section,key,value", [
    ("upstream", "tls", "sometimes"),
    ("server", "nul_bytes", "maybe"),
    ("server", "allow_plaintext_auth", "perhaps"),
    ("server", "max_connections", "many"),
    ("server", "idle_timeout", "-5"),
    ("server", "listen", "127.0.0.1:99999"),
    ("server", "listen", "not-an-address"),
    ("server", "tls_cert", "/nonexistent/cert.pem"),
    ("upstream", "ca_file", "/nonexistent/ca.pem"),
    ("upstream", "port", "0"),
    ("server", "upstream_backoff", "soon"),
    ("server", "upstream_backoff", "2d"),
    ("server", "upstream_backoff_max", "-1"),
])
def test_check_bad_config(make, section, key, value):
    pg = make(**{section: {key: value}})
    status, out = pg.check_config()
    assert status == 1, f"{key} = {value} accepted (status {status}): {out}"
    assert out.strip(), "a rejected config must say why"


@pytest.mark.parametrize("value", ["-1", "4097", "64k", "lots", ""])
def test_prefetch_kb_out_of_range_says_its_range(make, value):
    status, out = make(server={"prefetch_kb": value}).check_config()
    assert status == 1, f"prefetch_kb = {value} accepted: {out}"
    assert "[server] prefetch_kb: a whole number of KiB from 0 (off) to 4096" in out, out


@pytest.mark.parametrize("value", ["0", "1", "64", "4096"])
def test_prefetch_kb_in_range_is_accepted(make, value):
    status, out = make(server={"prefetch_kb": value}).check_config()
    assert status == 0, out


def test_check_unknown_key(make):
    pg = make(server={"lisen": "127.0.0.1:1"})
    status, out = pg.check_config()
    assert status == 1, f"a misspelt key was accepted: {out}"


def test_check_missing_file(testbed, popgate_bin):
    r = subprocess.run([popgate_bin, "-t", "-c", testbed.dir + "/no-such.conf"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert r.returncode == 1


def test_bad_config_refuses_to_start(make):
    pg = make(upstream={"tls": "sometimes"})
    with pytest.raises(RuntimeError, match="exited with status"):
        pg.start(timeout=10)
