"""A lead's product from a checkbox group (a list) against the pool's match_lead: any value a rep covers."""

from __future__ import annotations

import pytest

from hub.policy.facts import LeadSnapshot, lead_facts
from hub.policy.schemas import Pool
from hub.routing.rules import in_pool
from tests.routing.test_routing_rules import FRENCH_SPEAKER, GERMAN_SPEAKER


def facts_with(product: object) -> dict[str, object]:
    snapshot = LeadSnapshot(
        source="form", attribution={}, country=None, emails=[], phones=[], custom_fields={"product": product}
    )
    return lead_facts(snapshot)


@pytest.mark.parametrize(
    ("candidate", "product", "expected"),
    [
        pytest.param(FRENCH_SPEAKER, ["Pro"], True, id="one-ticked-box-covered"),
        pytest.param(FRENCH_SPEAKER, ["basic", "pro"], True, id="any-ticked-box-covered"),
        pytest.param(GERMAN_SPEAKER, ["pro"], False, id="not-covered"),
        pytest.param(GERMAN_SPEAKER, [], True, id="no-box-ticked-is-no-product"),
    ],
)
def test_match_lead_reads_a_list_fact_as_its_values(candidate, product, expected) -> None:  # type: ignore[no-untyped-def]
    pool = Pool.model_validate({"match_lead": ["product"]})
    assert in_pool(candidate, pool, None, facts_with(product)) is expected
