"""Build each route's request handling once per test process, not once per app.

Every test builds its own app, and FastAPI builds a route's request handling (the dependency analysis, a pydantic
adapter for every parameter) lazily, per app, when the first request walks past it: 0.3-0.6 s for a test's first
dashboard request, which passes ~200 routes. That state depends only on the route and on how its router was
included, which is the same in every app the tests build; only the app itself differs, as the provider of
dependency overrides, and the hub sets none. So the tests build it once and every app shares it.

`hub serve` builds one app and is not touched. If FastAPI's internals are not the ones this expects, nothing is
patched and each app builds its own, as before (only slower).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import routing


def share_route_state_between_apps() -> bool:
    """Install the shared build; False (and nothing changed) when FastAPI's internals differ."""
    included = getattr(routing, "_IncludedRouter", None)
    build = getattr(included, "_build_effective_context", None)
    context_type = getattr(routing, "_RouterIncludeContext", None)
    if build is None or context_type is None or not dataclasses.is_dataclass(context_type):
        return False
    if "dependency_overrides_provider" not in {f.name for f in dataclasses.fields(context_type)}:
        return False
    built: dict[tuple[int, str], tuple[routing.APIRoute, Any]] = {}

    def shared(self: Any, route: Any) -> Any:
        if not isinstance(route, routing.APIRoute):
            return build(self, route)
        how = repr(dataclasses.replace(self.include_context, dependency_overrides_provider=None))
        known = built.get((id(route), how))
        if known is None or known[0] is not route:  # the id of a route since collected could come back
            known = built[(id(route), how)] = (route, build(self, route))
        return known[1]

    included._build_effective_context = shared  # type: ignore[union-attr]
    return True
