"""The baseline of bench.turns: a separate minimal FastAPI app, one route that parses the form
and answers fixed TwiML — what FastAPI and uvicorn cost, and nothing of the product.

    python -m bench.bare_app --port P

It runs on the same uvicorn settings as `diaspora-bot serve` (api.cli), so that the ratio
compares the product's work with the bare cost of the same server, not two servers.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Request, Response

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>ok</Message></Response>'

app = FastAPI()


@app.post("/webhooks/whatsapp")
async def bare(request: Request) -> Response:
    await request.form()
    return Response(TWIML, media_type="application/xml")


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The settings of `diaspora-bot serve` (api/cli.py), not friendlier ones.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


if __name__ == "__main__":
    main()
