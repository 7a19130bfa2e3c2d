"""Request dependencies of the thresholds feature."""

from typing import Annotated

from fastapi import Depends, Request

from telemetry_ingest.thresholds.cache import RuleCache


async def get_rule_cache(request: Request) -> RuleCache:
    """The app's threshold rule cache, built in its lifespan and shared with its writer."""
    cache: RuleCache = request.app.state.rule_cache
    return cache


RuleCacheDep = Annotated[RuleCache, Depends(get_rule_cache)]
