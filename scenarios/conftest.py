"""Steps shared by every aspect. Steps stay a few lines; mechanism lives in src/rehearsal/."""

from __future__ import annotations

import pytest

from rehearsal.clients.fhir import FhirClient
from rehearsal.plan import Plan


@pytest.fixture
def fhir(plan: Plan):
    with FhirClient(plan.environment) as client:
        yield client
