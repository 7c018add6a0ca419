"""The review queue's HTTP endpoints (`/api/v1/review/...`): trainers and admins see the kinds of
message the bot missed, open one with its conversation, label or discard it; admins export the
labelled examples as training data. The work itself is in `resonanz.review`."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from handover.auth import PRINCIPAL, require
from handover.schemas import (
    ReviewCountResponse,
    ReviewDiscardRequest,
    ReviewExportResponse,
    ReviewGroupList,
    ReviewGroupQuery,
    ReviewItemDetail,
    ReviewLabelRequest,
    read_body,
    read_query,
    respond,
)
from resonanz.keys import DB
from resonanz.review import queue
from resonanz.review.export import domain_vocabulary, write_export
from resonanz.store.vocabulary import AgentRole, ReviewStatus

REVIEWERS = (AgentRole.ADMIN, AgentRole.TRAINER)
ITEM = "/api/v1/review/items/{id:[0-9a-f]{32}}"


async def export_reviewed(db: object, root: Path) -> dict[str, object]:
    """Write the labelled examples below `root` (the CLI and the admin API); the result as JSON."""
    examples = await queue.labelled(db)  # type: ignore[arg-type]
    result = await asyncio.to_thread(write_export, root, examples)
    return {"path": str(result.path), "written": result.written, "added": result.added, "skipped": result.skipped,
            "intents": result.intents, "new_intents": result.new_intents}


class ReviewApi:
    def __init__(self, training_root: Path) -> None:
        self.root = training_root

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/review/groups", require(*REVIEWERS)(self.list_groups)),
            web.get(ITEM, require(*REVIEWERS)(self.get_item)),
            web.post(ITEM + "/label", require(*REVIEWERS)(self.label)),
            web.post(ITEM + "/discard", require(*REVIEWERS)(self.discard)),
            web.post("/api/v1/review/export", require(AgentRole.ADMIN)(self.export)),
        ]

    async def list_groups(self, request: web.Request) -> web.Response:
        status = ReviewStatus(read_query(request, ReviewGroupQuery).status)
        intents, entities = await asyncio.to_thread(domain_vocabulary, self.root)
        return respond(ReviewGroupList, {"groups": await queue.groups(request.app[DB], status),
                                         "intents": intents, "entities": entities})

    async def get_item(self, request: web.Request) -> web.Response:
        return respond(ReviewItemDetail, await queue.item_detail(request.app[DB], request.match_info["id"]))

    async def label(self, request: web.Request) -> web.Response:
        body = await read_body(request, ReviewLabelRequest)
        _, entities = await asyncio.to_thread(domain_vocabulary, self.root)
        n = await queue.label(
            request.app[DB], request.match_info["id"], intent=body.intent, reviewer_id=request[PRINCIPAL].agent.id,
            marks=[queue.EntityMark(e.start, e.end, e.entity) for e in body.entities], text=body.text,
            whole_group=body.whole_group, entities=entities,
        )
        return respond(ReviewCountResponse, {"items": n})

    async def discard(self, request: web.Request) -> web.Response:
        body = await read_body(request, ReviewDiscardRequest)
        n = await queue.discard(request.app[DB], request.match_info["id"], reviewer_id=request[PRINCIPAL].agent.id,
                                whole_group=body.whole_group)
        return respond(ReviewCountResponse, {"items": n})

    async def export(self, request: web.Request) -> web.Response:
        return respond(ReviewExportResponse, await export_reviewed(request.app[DB], self.root))
