"""Messages that break POP3 gateways (TESTBED.md, "Mail that breaks gateways"),
and the model of what popgate must send for each.

Every message is exact bytes as stored in the Maildir. expected_retr() and
expected_top() state DESIGN.md's rule ("LIST size and RETR bytes") as code:
every line ending becomes CRLF (CRLF, bare LF and bare CR alike), a final CRLF
is added to a non-empty message that lacks one, NUL becomes 0x80 unless
nul_bytes = pass. Dot-stuffing is a wire matter, checked separately.
"""

import glob
import json
import os
import re
from dataclasses import dataclass

BIG_SIZE = 20 * 1024 * 1024


@dataclass(frozen=True)
class Message:
    name: str
    data: bytes
    note: str


def _msg(name, note, data):
    return Message(name, data, note)


def _hdr(subject, extra=b""):
    return (b"From: Alice <alice@example.org>\r\n"
            b"To: Bob <bob@example.org>\r\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"Message-ID: <" + subject.replace(b" ", b"-") + b"@popgate.test>\r\n"
            b"Subject: " + subject + b"\r\n" + extra)


def big_message(size=BIG_SIZE, name=b"big", long_line=True):
    """A deterministic message of exactly size octets: CRLF lines of varied
    length, some of them "." or starting with "." so stuffing is exercised all
    the way through, and (long_line) a 100,000-octet line in the middle."""
    head = _hdr(b"big " + name, b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n") + b"\r\n"
    parts = [head]
    total = len(head)
    i = 0
    very_long = b"L" * 100_000 + b"\r\n"
    while total < size:
        if i == 5000 and long_line:
            line = very_long
        elif i % 97 == 0:
            line = b".\r\n"
        elif i % 89 == 0:
            line = b"..dots " + str(i).encode() + b"\r\n"
        else:
            line = (b"line %07d " % i) + b"abcdefghijklmnopqrstuvwxyz0123456789"[: i % 37] * 2 + b"\r\n"
        parts.append(line)
        total += len(line)
        i += 1
    # Cut to size - 2 and end on CRLF so the size is exact; never leave a CR
    # from the cut in front of that CRLF (it would be a bare CR).
    data = b"".join(parts)[:size - 2]
    if data.endswith(b"\r"):
        data = data[:-1] + b"x"
    return data + b"\r\n"


MULTIPART_MALFORMED = (
    _hdr(b"malformed mime",
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"unterminated\r\n")
    + b"\r\n"
    b"preamble\r\n"
    b"--unterminated\r\n"
    b"Content-Type: text/plain; charset=\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"!!!not base64!!!\r\n"
    b"--unterminated\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>never closed\r\n"
    b"--wrong-boundary--\r\n")


def corpus(include_big=True):
    """The difficult messages, in seeding order (message n is corpus()[n-1])."""
    msgs = [
        _msg("plain", "well-formed CRLF message: the control case",
             _hdr(b"plain") + b"\r\nHello Bob,\r\n\r\nthis one is ordinary.\r\n"),
        _msg("bare_lf", "every line ends with a bare LF (Unix mail)",
             _hdr(b"bare lf").replace(b"\r\n", b"\n") + b"\nline one\nline two\n\nlast\n"),
        _msg("bare_cr", "body lines end with a bare CR (old Mac)",
             _hdr(b"bare cr") + b"\r\nline one\rline two\rline three\r\n"),
        _msg("mixed_endings", "CRLF, LF, CR and CR CR LF in one body",
             _hdr(b"mixed endings") + b"\r\ncrlf\r\nlf\ncr\rcrcrlf\r\r\nend\r\n"),
        _msg("no_final_newline", "the last line has no line ending",
             _hdr(b"no final newline") + b"\r\nthe end has no newline"),
        _msg("ends_with_cr", "the message ends with a bare CR",
             _hdr(b"ends with cr") + b"\r\nlast line\r"),
        _msg("dot_lines", "lines that are '.', '..', '...', start with '.', and a last line '.'",
             _hdr(b"dot lines") + b"\r\n.\r\nbefore\r\n..\r\n...\r\n.hidden\r\n. space\r\n"
             b"..double\r\nafter\r\n."),
        _msg("dot_lf", "'.' lines with bare LF endings",
             _hdr(b"dot lf").replace(b"\r\n", b"\n") + b"\n.\n..\n.x\nend\n"),
        _msg("only_dot", "the whole message is one line '.'", b".\r\n"),
        _msg("eight_bit", "8-bit bytes: UTF-8, Latin-1, 0x80 and 0xFF, in headers and body",
             _hdr(b"eight bit \xc3\xa9t\xc3\xa9", b"X-Latin1: caf\xe9\r\n")
             + b"\r\n\xc3\xa4\xc3\xb6\xc3\xbc \xe9\xe8 \x80\x81\xfe\xff\r\n"),
        _msg("nul_bytes", "NUL bytes in the body (old Outlook hangs on them)",
             _hdr(b"nul bytes") + b"\r\nbefore\x00after\r\n\x00\r\nend\x00\r\n"),
        _msg("line_1500", "a 1,500-octet line (RFC 5322 limit is 998)",
             _hdr(b"line 1500") + b"\r\n" + b"x" * 1500 + b"\r\nafter\r\n"),
        _msg("line_10000", "a 10,000-octet line, then a '.' line right after it",
             _hdr(b"line 10000") + b"\r\n" + b"y" * 10000 + b"\r\n.\r\nafter\r\n"),
        _msg("empty", "a 0-octet message", b""),
        _msg("single_newline", "a message that is one empty line", b"\r\n"),
        _msg("headers_only", "headers and no blank line, no body",
             _hdr(b"headers only")),
        _msg("headers_blank_only", "headers and the blank line, empty body",
             _hdr(b"headers blank only") + b"\r\n"),
        _msg("from_line", "an mbox 'From ' line first, and '>From' and 'From ' in the body",
             b"From alice@example.org Mon Jan  1 00:00:00 2024\r\n" + _hdr(b"from line")
             + b"\r\nFrom the start\r\n>From quoted\r\n"),
        _msg("malformed_mime", "unterminated boundary parameter, bad base64, unclosed parts",
             MULTIPART_MALFORMED),
        _msg("long_header", "a folded 3,000-octet header",
             _hdr(b"long header", b"X-Long:" + b"\r\n".join([b" word" * 50] * 12) + b"\r\n")
             + b"\r\nbody\r\n"),
    ]
    if include_big:
        msgs.append(_msg("big_20mb", "a 20 MB message with '.' lines and a 100,000-octet line",
                         big_message()))
    return msgs


# A line ends at LF, the CR before it being part of the ending; any other CR
# is text (README "What RETR sends").
_LINE_END = re.compile(rb"\r?\n")


def normalise(data, nul="replace"):
    """The message as popgate must send it, before dot-stuffing: bare LF
    becomes CRLF, bare CR (and so CR CR LF) passes, a final CRLF is added when
    missing (after a final bare CR too), NUL per policy."""
    out = _LINE_END.sub(b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    if nul == "replace":
        out = out.replace(b"\x00", b"\x80")
    return out


def expected_retr(data, nul="replace"):
    return normalise(data, nul)


def split_header(norm):
    """(header including the blank line, body) of a normalised message. With no
    blank line the whole message is header (RFC 1939 TOP then sends it all)."""
    if norm.startswith(b"\r\n"):
        return b"\r\n", norm[2:]
    i = norm.find(b"\r\n\r\n")
    if i < 0:
        return norm, b""
    return norm[:i + 4], norm[i + 4:]


def expected_top(data, lines, nul="replace"):
    """TOP n lines: the header, the blank line, then the first lines of the body."""
    header, body = split_header(normalise(data, nul))
    if lines == 0 or not body:
        return header
    kept = body.split(b"\r\n")[:-1][:lines]
    return header + b"".join(ln + b"\r\n" for ln in kept)


def served(kind, data):
    """What server kind's IMAP (BODY[], RFC822.SIZE) serves for a message
    stored as data; popgate's RETR model is expected_retr(served(...)).
    Courier 5.0 turns every LF into CRLF, so a stored CRLF is served as
    CR CR LF (its own POP3 does the same), and its IMAP drops a bare CR at
    the very end of the file (servers/courier_bed.py, test_differential.py
    K4). Dovecot and Cyrus serve what was stored."""
    if kind != "courier":
        return data
    if data.endswith(b"\r"):
        data = data[:-1]
    return data.replace(b"\n", b"\r\n")


def native(kind, data):
    """data (CRLF line ends) as server kind's own delivery would store it:
    Courier's delivery agents write Maildir files with LF line ends (a file
    stored with CRLF it serves with CR CR LF, see served()); Dovecot and
    Cyrus store what they are given."""
    return data.replace(b"\r\n", b"\n") if kind == "courier" else data


def expected_top_on(kind, data, lines, nul="replace"):
    """popgate's TOP n lines in front of server kind: the header as the
    server's IMAP delimits it (BODY[HEADER]), then n body lines. Courier
    parses the stored file, where the blank line is a stored LF or CRLF,
    and serves it as CRLF or CR CR LF; the lines are then its served lines."""
    if kind != "courier":
        return expected_top(served(kind, data), lines, nul)
    parts = re.findall(rb"[^\n]*\n|[^\n]+$", data)
    blank = next((i for i, ln in enumerate(parts) if ln in (b"\n", b"\r\n")), len(parts) - 1)
    kept = parts[:blank + 1] + (parts[blank + 1:][:lines] if lines else [])
    text = b"".join(kept)
    return normalise(served(kind, text) if len(kept) == len(parts)
                     else text.replace(b"\n", b"\r\n"), nul)


def dot_stuff(norm):
    """The wire form of a normalised body (without the terminating line)."""
    return re.sub(rb"(?:^|(?<=\r\n))\.", b"..", norm)


def crlf_to_lf(data):
    """For comparing with clients that deliver Unix line ends."""
    return _LINE_END.sub(b"\n", data)


SA_CORPUS_DIR = os.environ.get("POPGATE_SA_CORPUS", "/var/cache/popgate-test/spamassassin")


def spamassassin(count=200, group="spam-2"):
    """[(name, bytes)] of the first count messages of a SpamAssassin public
    corpus group (deploy/dev/install-corpus.sh), as the corpus holds them:
    LF line ends, bare CRs where the mail had them, without the mbox "From "
    line a Maildir never holds."""
    files = sorted(glob.glob(os.path.join(SA_CORPUS_DIR, group, "*.json")))
    assert len(files) >= count, \
        f"the SpamAssassin corpus is not in {SA_CORPUS_DIR}: run deploy/dev/install-corpus.sh"
    out = []
    for path in files[:count]:
        with open(path) as f:
            d = json.load(f)
        try:
            raw = d["text"].encode("latin-1")   # the original octets, for most
        except UnicodeEncodeError:
            raw = d["text"].encode("utf-8")
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1]
        out.append((os.path.basename(path).split(".")[0], raw))
    return out
