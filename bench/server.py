"""The server that the benchmarks load: the real app, plus a bare endpoint beside it.

`python -m bench.server --port P` with DATABASE_URL set. The bare endpoint answers a form
post with fixed TwiML and does nothing else: the baseline of what FastAPI and uvicorn cost.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import Request, Response

from api.app import create_app

TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>ok</Message></Response>'


def build() -> object:
    app = create_app(run_worker=False)

    @app.post("/bench/bare", include_in_schema=False)
    async def bare(request: Request) -> Response:
        await request.form()
        return Response(TWIML, media_type="application/xml")

    # First in line, like the message routes, so that both pay the same routing.
    app.router.routes.insert(0, app.router.routes.pop())
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",  # type: ignore[arg-type]
        access_log=False,
    )


if __name__ == "__main__":
    main()
