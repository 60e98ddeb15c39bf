"""IMAP servers other than the test bed's Dovecot that the integration suite
can put behind popgate, by kind. Each class has the same interface (see
servers/courier_bed.py): kind, host, ports, cert, start(), stop(), add_user(),
seed(), imap(), create_trash(), popgate_upstream(), log_tail(), capabilities."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers.courier_bed import CourierBed  # noqa: E402

BEDS = {
    "courier": CourierBed,
}
