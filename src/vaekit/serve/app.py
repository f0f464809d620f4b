"""The explorer's web app: a JSON and PNG API over `Explorer`, and the static page (Starlette, served by uvicorn).

    GET  /                              the page (static/index.html, app.js, style.css)
    GET  /static/plotly.min.js          Plotly.js as shipped by the `plotly` Python package (no CDN)
    GET  /api/info                      the run: sizes, classes, dimensions by KL
    GET  /api/projection?method=pca     2-D coordinates of the points (pca, tsne, umap; cached in the run folder)
    GET  /api/point/{id}                one point: row, label, code (text: sentence and reconstruction)
    GET  /api/image/{input|reconstruction}/{id}.png
    POST /api/decode        {z, label?}                      PNG of the decoded code (text: {"text": ...})
    POST /api/traverse      {dim, z, steps?, span?, label?}   PNG strip (text: {"sentences": [...]})
    POST /api/interpolate   {a, b, steps?, method?, label?}   PNG strip (text: sentences)
    POST /api/sample        {n?, label?, seed?}               PNG strip (text: sentences)
    POST /api/arithmetic    {point, target, strength?, steps?} PNG strip (text: sentences)
    POST /api/text          {sentence, samples?, nearest?}    text runs: reconstruction, nearest, samples
    POST /api/text/interpolate {a, b, steps?, method?}        text runs: sentences

Every parameter is checked by `Explorer` (a bad one is a 400 with {"error": message}, an unknown point a 404);
the request body must be a JSON object of at most MAX_BODY bytes. The model runs in Starlette's thread pool, one
request at a time (`Explorer.lock`), so several tabs can use one server.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import VaekitError
from .explorer import Explorer, RequestError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MAX_BODY = 64 * 1024
# Deepest nesting of arrays and objects a request may have (the API's deepest is 2: a list of numbers in an
# object). Python's JSON parser stops at its recursion limit, which other code in the process may have raised.
MAX_DEPTH = 32


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of JSON arrays and objects in `raw`, brackets inside strings not counted."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest
PNG = "image/png"


def plotly_js() -> Path:
    """plotly.min.js of the installed `plotly` package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def create_app(explorer: Explorer):
    """The Starlette application serving `explorer`."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    def answer(result):
        if isinstance(result, bytes):
            return Response(result, media_type=PNG, headers={"Cache-Control": "no-store"})
        return JSONResponse(result)

    async def body_of(request: Request) -> dict:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise RequestError(f"the request body may have at most {MAX_BODY} bytes", status=413)
        if nesting_depth(raw) > MAX_DEPTH:  # checked first: how deep the parser goes depends on the process
            raise RequestError(f"the request body nests too deeply (more than {MAX_DEPTH} levels)")
        try:
            data = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise RequestError("the request body must be JSON") from None
        except RecursionError:  # (not reached after the depth check; kept as the parser's own limit)
            raise RequestError("the request body nests too deeply") from None
        if not isinstance(data, dict):
            raise RequestError("the request body must be a JSON object")
        return data

    def post(method, keys: tuple[str, ...], required: tuple[str, ...] = ()):
        """A POST endpoint calling `method` with the body's `keys` (unknown keys are refused)."""

        async def endpoint(request: Request):
            data = await body_of(request)
            unknown = sorted(set(data) - set(keys))
            if unknown:
                raise RequestError(f"unknown field {unknown[0]!r}; this endpoint takes: {', '.join(keys)}")
            missing = [k for k in required if k not in data]
            if missing:
                raise RequestError(f"missing field {missing[0]!r}")
            return answer(await run_in_threadpool(method, **data))

        return endpoint

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def plotly(request: Request):
        return FileResponse(plotly_js(), media_type="text/javascript")

    async def info(request: Request):
        return JSONResponse(explorer.info())

    async def projection(request: Request):
        method = request.query_params.get("method", "pca")
        return JSONResponse(await run_in_threadpool(explorer.projection, method))

    async def point(request: Request):
        return JSONResponse(await run_in_threadpool(explorer.point, request.path_params["point"]))

    async def image(request: Request):
        kind, name = request.path_params["kind"], request.path_params["name"]
        if not name.endswith(".png"):
            raise RequestError("images are PNG: /api/image/KIND/ID.png", status=404)
        method = {"input": explorer.input_png, "reconstruction": explorer.reconstruction_png}.get(kind)
        if method is None:
            raise RequestError(f"no image kind {kind!r}: input or reconstruction", status=404)
        return answer(await run_in_threadpool(method, name[:-4]))

    async def refused(request: Request, error: VaekitError):  # a bad value (RequestError's own status), or one
        return JSONResponse({"error": str(error)}, status_code=getattr(error, "status", 400))  # the library refused

    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    async def crashed(request: Request, error: Exception):  # a bug: logged, and still a JSON answer
        log.exception("explorer request %s failed", request.url.path)
        return JSONResponse({"error": f"internal error: {type(error).__name__}"}, status_code=500)

    routes = [
        Route("/", index),
        Route("/static/plotly.min.js", plotly),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/info", info),
        Route("/api/projection", projection),
        Route("/api/point/{point}", point),
        Route("/api/image/{kind}/{name}", image),
        Route("/api/decode", post(explorer.decode, ("z", "label"), ("z",)), methods=["POST"]),
        Route("/api/traverse", post(explorer.traverse, ("dim", "z", "steps", "span", "label"), ("dim", "z")),
              methods=["POST"]),
        Route("/api/interpolate", post(explorer.interpolate, ("a", "b", "steps", "method", "label"), ("a", "b")),
              methods=["POST"]),
        Route("/api/sample", post(explorer.sample, ("n", "label", "seed")), methods=["POST"]),
        Route("/api/arithmetic", post(explorer.arithmetic, ("point", "target", "strength", "steps", "label"),
                                      ("point", "target")), methods=["POST"]),
        Route("/api/text", post(explorer.explore_input, ("text", "n_samples", "n_nearest", "seed"), ("text",)),
              methods=["POST"]),
        Route("/api/text/interpolate", post(explorer.interpolate_inputs, ("a", "b", "steps", "method"),
                                            ("a", "b")), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={VaekitError: refused, HTTPException: http_error,
                                                        Exception: crashed})
