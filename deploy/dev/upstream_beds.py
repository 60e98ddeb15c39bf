"""The IMAP servers popgate is tested against, by name, each with its own
POP3 daemon on the same mailbox as a reference.

Every bed has the same interface: kind, host, ports (at least "imap": plain
with STARTTLS, "pop3": the server's own POP3, plain, USER/PASS), cert (PEM,
valid for "localhost"), start() -> self, stop() (idempotent), context
manager, add_user(name, password), seed(user, messages, flags="") (exact
bytes, UIDs ascending in list order), imap(user, password=None),
create_trash(user) -> name of a \\Trash special-use mailbox,
popgate_upstream() -> popgate [upstream] keys, log_tail(n=60), capabilities.

"dovecot" is testbed.Testbed (with Redis: the popgates of every bed keep
their state in the Dovecot test bed's Redis); the others run no Redis.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "servers"))

from cyrus_bed import CyrusBed  # noqa: E402
from testbed import Testbed  # noqa: E402

BEDS = {
    "dovecot": Testbed,
    "cyrus": CyrusBed,
}
