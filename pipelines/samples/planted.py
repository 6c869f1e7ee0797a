"""The one effect deliberately planted in the synthetic A&E extract.

From ``PLANTED_START`` the probability that an A&E attendance by a resident of
Trafford's ``PLANTED_LOCALITY`` is alcohol-related is multiplied by
``1 - PLANTED_REDUCTION`` (the alcohol flag is thinned; the attendance itself
stays, so total attendances barely move). Nothing else in any extract changes
at that date: other localities, other GM boroughs, maternity bookings and
police incidents carry no planted effect, so they serve as controls.

"Resident of the locality" means the person's true (generated) postcode lies
in the locality according to the ``locality`` column of the reference pack's
``geography/trafford_postcodes.csv``. The postcode may be blank on a given row
(about 5% of Trafford rows); the effect applies all the same.

Tests and the evaluation of analysis methods import these constants; change
them only together with the tests.
"""

from __future__ import annotations

from datetime import date

PLANTED_LOCALITY = "North"
PLANTED_START = date(2022, 10, 1)
PLANTED_REDUCTION = 0.30
#: the multiplier applied to the expected alcohol-related attendance rate
PLANTED_RATE_RATIO = 1.0 - PLANTED_REDUCTION

__all__ = ["PLANTED_LOCALITY", "PLANTED_START", "PLANTED_REDUCTION", "PLANTED_RATE_RATIO"]
