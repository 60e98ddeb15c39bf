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
