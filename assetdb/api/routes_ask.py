"""POST /api/ask: a question answered by an LLM from the catalogue, streamed as NDJSON.

Off unless the admin sets ASSETDB_ASK=1: it sends catalogue content (descriptions, tags,
metadata, images) to whichever LLM ASSETDB_ASK_MODEL (or llm's default) names, which may
be a third party. It needs the API token when one is set, as writes do: each call costs
a model call. Errors found before the first chunk of the answer are plain JSON errors
with their status; one after it ends the stream with an "error" line, never a silent
half answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import PurePath
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from assetdb.api.auth import require_token
from assetdb.api.busy import Gate
from assetdb.api.deps import ConfigDep, EncoderDep, FiltersDep, SettingsDep, read_upload
from assetdb.ask.models import AskTimeout, ProviderError, resolve_model, start_answer
from assetdb.ask.retrieve import DEFAULT_K, MAX_K, AskError, NothingFound, UserImage, retrieve
from assetdb.catalog.catalogue import Catalog

router = APIRouter(prefix="/api", tags=["ask"])
OFF = ("asking an LLM is off on this server: it sends catalogue content to the LLM; the "
       "admin turns it on with ASSETDB_ASK=1 (docs/ask.md)")


def _same_origin(request: Request) -> None:
    """A multipart POST is a "simple" request: a page on another site may send one without
    a CORS preflight (it cannot read the answer, but the LLM call would run and cost).
    Browsers name the page's origin on every POST; one that is not this server is refused."""
    origin = request.headers.get("origin")
    cross = request.headers.get("sec-fetch-site") == "cross-site"
    if cross or (origin and urlsplit(origin).netloc.lower()
                 != (request.headers.get("host") or "").lower()):
        raise HTTPException(403, "asking is refused to pages of other sites (the request's "
                                 "Origin is not this server)")


def _status(exc: AskError) -> int:
    if isinstance(exc, NothingFound):
        return 404
    if isinstance(exc, AskTimeout):
        return 504
    if isinstance(exc, ProviderError):
        return 502
    return 503  # no llm, no model configured, unknown model, no key: the server's set-up


def _line(event: str, **data: object) -> bytes:
    return (json.dumps({"event": event, **data}, ensure_ascii=False) + "\n").encode()


@router.post("/ask", summary="Ask a question; the answer streams as NDJSON",
             dependencies=[Depends(require_token)])
def ask(
    request: Request, settings: SettingsDep, config: ConfigDep, encoder: EncoderDep,
    filters: FiltersDep,
    question: Annotated[str, Form(max_length=2000, description="the question")],
    file: Annotated[UploadFile | None, File(description="a photo of the thing asked "
                                                        "about (image -> image search)")] = None,
    asset_id: Annotated[int | None, Form(description="ask about a catalogued asset")] = None,
    k: Annotated[int, Form(ge=1, le=MAX_K, description="sources given to the LLM")] = DEFAULT_K,
    context_only: Annotated[bool, Form(description="return the context pack (JSON, the "
                                                   "same bytes as `assetdb ask "
                                                   "--context-only --json`) and call no "
                                                   "LLM")] = False,
) -> Response:
    """Multipart form: `question`, and `file` (an image) or `asset_id`, `k`,
    `context_only`; filters as query parameters. The answer streams as NDJSON lines:
    `{"event": "sources", ...}`, then `{"event": "answer", "text": ...}` chunks, then
    `{"event": "done"}` (or `{"event": "error", "error": ...}` if the LLM fails midway).
    Example: `curl -N -H "Authorization: Bearer $T" -F question='What is the part
    number?' -F file=@photo.jpg http://127.0.0.1:8000/api/ask`"""
    if not config.ask:
        raise HTTPException(403, OFF)
    _same_origin(request)
    try:
        return _ask(request, settings, config, encoder, filters, question, file, asset_id, k,
                    context_only)
    except AskError as exc:
        raise HTTPException(_status(exc), str(exc)) from None


def _ask(request, settings, config, encoder, filters, question, file, asset_id, k,  # noqa: ANN001, ANN202, PLR0913
         context_only):
    from assetdb.ask.retrieve import check_question
    from assetdb.errors import FilterError

    question = check_question(question, k)
    if file is not None and asset_id is not None:
        raise FilterError("give an image or an asset id, not both")
    user_image = None
    if file is not None:
        data = read_upload(file, config)
        gate: Gate = request.app.state.decode_gate
        with gate.hold():
            user_image = UserImage(file.filename or "upload", data,
                                   max_pixels=config.max_upload_pixels)
    model = None if context_only else resolve_model(None)
    pack = retrieve(Catalog(settings), question, k=k, filters=filters, image=user_image,
                    asset_id=asset_id, encoder=lambda: encoder)
    if context_only:
        return Response(pack.to_json(), media_type="application/json")
    answer = start_answer(settings, pack, model, user_image)  # the first chunk is here

    def stream() -> Iterator[bytes]:
        yield _line("sources", model=answer.model, images_attached=answer.images_attached,
                    note=answer.note, sources=[
                        {"id": s.id, "uri": s.uri, "name": PurePath(s.uri).name,
                         "title": s.title, "similarity": s.similarity,
                         "thumbnail_url": f"/api/assets/{s.id}/thumbnail"}
                        for s in pack.sources])
        try:
            for chunk in answer.chunks():
                yield _line("answer", text=chunk)
        except AskError as exc:
            yield _line("error", error=f"the answer was cut off: {exc}")
            return
        yield _line("done")

    return StreamingResponse(stream(), media_type="application/x-ndjson",
                             headers={"Cache-Control": "no-store"})
