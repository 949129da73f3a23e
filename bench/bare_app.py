"""The ceiling for bench/ingest_forms.py and bench/ingest_events.py: the hub's webhook endpoints'
HTTP shapes with no work behind them.

Same framework, same server and the same uvicorn options as `hub serve`, so the gap between
this and the hub is what the hub's own work costs (middleware, signature checks, source lookup,
validation, contact resolution and the database transaction). Each endpoint reads and parses its
body (the one cost every real endpoint pays) and answers with the hub's status code and shape.

    .venv/bin/python bench/bare_app.py --port 8100
"""

from __future__ import annotations

import argparse
import json
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

app = FastAPI(title="bare webhook endpoints (benchmark ceiling)")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Up; the benchmark polls this before it sends load."""
    return {"status": "ok"}


@app.post("/webhooks/forms/{slug}", status_code=202)
async def submit_form(slug: str, request: Request) -> JSONResponse:
    """Parse the JSON body (the one cost every real endpoint pays) and answer like the hub does."""
    fields = json.loads(await request.body())
    if not isinstance(fields, dict):
        return JSONResponse({"error": "BadRequest", "message": f"{slug}: expected a JSON object"}, status_code=400)
    return JSONResponse({"contact_id": 1, "event_id": 1}, status_code=202)


@app.post("/webhooks/twilio/voice/status", status_code=204, response_class=Response)
async def call_status(request: Request) -> Response:
    """Decode the form body of a Twilio status callback and answer 204 like the hub (no signature check)."""
    params = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True, max_num_fields=500)
    if not any(name == "CallSid" for name, _ in params):
        return JSONResponse({"error": "BadRequest", "message": "CallSid is missing"}, status_code=400)
    return Response(status_code=204)


@app.post("/webhooks/email/sendgrid")
async def sendgrid_events(request: Request) -> JSONResponse:
    """Parse a SendGrid event batch (a JSON array) and answer with the hub's counts (no signature check)."""
    events = json.loads(await request.body())
    if not isinstance(events, list):
        return JSONResponse({"error": "BadRequest", "message": "expected a JSON array of events"}, status_code=400)
    return JSONResponse({"received": len(events), "stored": len(events), "duplicates": 0, "unmatched": 0})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    # Mirrors hub.cli.serve: one process, uvicorn's defaults (uvloop + httptools when installed).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
