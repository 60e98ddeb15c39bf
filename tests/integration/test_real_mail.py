"""Real mail, byte for byte (issue 12): 200 messages of the SpamAssassin
public corpus (deploy/dev/install-corpus.sh) in a Dovecot Maildir, through
popgate and through Dovecot's own POP3 on the same mailbox.

- RETR sends exactly what Dovecot's POP3 sends, for every message: bare CRs
  included (a few corpus messages have them; an earlier popgate turned each
  into CRLF, sending other bytes and more octets than LIST announced).
- LIST equals the octets RETR sends, from the first session on: no message
  needs to be streamed once before its size is right.
"""

import pytest

from messages import dot_stuff, expected_retr, spamassassin
from pop3client import POP3, unstuff

MAIL = spamassassin(200)


@pytest.fixture(scope="module")
def real_box(new_user):
    mb = new_user()
    mb.seed([data for _, data in MAIL])
    return mb


@pytest.fixture(scope="module")
def dovecot_retr(testbed, real_box):
    """{number: unstuffed body} as Dovecot's own POP3 sends it."""
    c = POP3("127.0.0.1", testbed.ports["pop3"], timeout=60)
    try:
        c.login(real_box.user, real_box.password)
        out = {}
        for n in range(1, len(MAIL) + 1):
            assert c.cmd(f"RETR {n}").startswith(b"+OK")
            out[n] = unstuff(c.read_multi_raw())
        return out
    finally:
        c.close()   # no QUIT: nothing changes


def test_corpus_has_the_mail_that_broke_popgate():
    with_bare_cr = [name for name, data in MAIL if b"\r" in data.replace(b"\r\n", b"")]
    assert with_bare_cr, "the corpus no longer exercises bare CRs"


def test_retr_is_dovecots_bytes_and_list_is_right_first_time(popgate, real_box, dovecot_retr, session):
    c = session(popgate, real_box, device="first")
    listed = dict(c.list())
    assert len(listed) == len(MAIL)
    for n, (name, data) in enumerate(MAIL, 1):
        raw = c.retr_raw(n)
        body = unstuff(raw)
        assert raw == dot_stuff(body)
        assert body == dovecot_retr[n], f"{name}: RETR differs from Dovecot's POP3"
        assert body == expected_retr(data), f"{name}: RETR differs from the model"
        assert listed[n] == len(body), f"{name}: LIST {listed[n]} before RETR, RETR sent {len(body)}"
