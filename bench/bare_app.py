"""The ceiling for bench/ingest_forms.py: the form endpoint's HTTP shape with no work behind it.

Same framework, same server and the same uvicorn options as `hub serve`, so the gap between
this and the hub is what the hub's own work costs (middleware, source lookup, validation,
contact resolution and the database transaction).

    .venv/bin/python bench/bare_app.py --port 8100
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI(title="bare form endpoint (benchmark ceiling)")


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
