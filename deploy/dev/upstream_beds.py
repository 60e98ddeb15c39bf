"""The IMAP servers popgate is tested against, by name, each with its own
POP3 daemon on the same mailbox as a reference.

Every bed has the same interface: kind, host, ports (at least "imap": plain
with STARTTLS, "pop3": the server's own POP3, plain, USER/PASS; the client
tests also use "pop3s"), cert (PEM, valid for "localhost"), start() -> self,
stop() (idempotent), context manager, add_user(name, password),
seed(user, messages, flags="") (exact bytes, UIDs ascending in list order;
raises ValueError for a message the server refuses to store, see
tests/integration/conftest.py UNSTORABLE), imap(user, password=None),
create_trash(user) -> name of the trash mailbox (idempotent; \\Trash
special-use where the server has SPECIAL-USE, Courier: INBOX.Trash, plain),
popgate_upstream() -> popgate [upstream] keys, log_tail(n=60) -> str,
capabilities (set, after login). As root a bed's processes may run as nobody:
its parent_dir must be searchable by others.

"dovecot" is testbed.Testbed (with Redis: the popgates of every bed keep
their state in the Dovecot test bed's Redis); the others run no Redis.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "servers"))

from courier_bed import CourierBed  # noqa: E402
from cyrus_bed import CyrusBed  # noqa: E402
from testbed import Testbed  # noqa: E402

BEDS = {
    "dovecot": Testbed,
    "cyrus": CyrusBed,
    "courier": CourierBed,
}
