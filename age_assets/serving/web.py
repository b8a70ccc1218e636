"""``age-assets serve``: a JSON API and one page that box each face in a photo with its age."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol, TypedDict

import anyio
import numpy as np
import uvicorn
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from age_assets.serving.followed_model import FollowedModel, Locate, ServedModel
from age_assets.serving.photos import MAX_PIXELS, AgeEstimator, FaceAge, PhotoError, PhotoTooLarge, decode_photo

logger = logging.getLogger(__name__)

MULTIPART_OVERHEAD = 64 * 1024
"""Room for the multipart boundaries and part headers around the file in a request body."""
MAX_DISCARDED_BYTES = 64_000_000
"""An oversize body up to this long is read and thrown away before the 413 answer: a client that
sends its whole body before it reads the answer (Python's urllib) otherwise gets a connection reset
instead of the answer. A longer one is refused unread."""


@dataclass(frozen=True)
class ServeLimits:
    """What the server takes on: per request (upload, pixels) and at once (inferences, waiting time)."""

    max_upload_bytes: int = 10_000_000
    max_pixels: int = MAX_PIXELS
    max_concurrent: int = 2
    queue_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")


class Estimator(Protocol):
    """What the app needs of a model: ``AgeEstimator`` or a stand-in."""

    image_size: int

    def faces(self, image: np.ndarray) -> list[FaceAge]: ...


class Box(BaseModel):
    x: int
    y: int
    width: int
    height: int


class Interval(BaseModel):
    low: float
    high: float


class Face(BaseModel):
    index: int
    box: Box
    score: float | None
    low_confidence: bool
    age: float
    bucket: str
    probabilities: dict[str, float]
    intervals: dict[str, Interval] = Field(
        description="coverage in percent (\"80\", \"90\") -> the ages between which the true age lies for that "
                    "share of faces like the validation faces")


class Prediction(BaseModel):
    file: str
    width: int
    height: int
    faces: list[Face]
    message: str


class Health(BaseModel):
    status: str
    image_size: int
    model: str | None
    fingerprint: str | None
    max_upload_bytes: int
    max_pixels: int


class ErrorBody(BaseModel):
    error: str


class ServeError(Exception):
    """A request the server refuses or could not answer: the status and a message for a person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _State(TypedDict):
    slots: anyio.Semaphore


def _megabytes(n: int) -> str:
    return f"{n / 1e6:g} MB"


def _face(face: FaceAge) -> Face:
    x, y, width, height = face.box
    return Face(index=face.index, box=Box(x=x, y=y, width=width, height=height), score=face.score,
                low_confidence=face.low_confidence, age=face.age, bucket=face.bucket, probabilities=face.probabilities,
                intervals={key: Interval(low=low, high=high) for key, (low, high) in face.intervals.items()})


async def _serve_error(request: Request, error: ServeError) -> JSONResponse:
    return JSONResponse({"error": error.message}, status_code=error.status)


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)


async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors())
    return JSONResponse({"error": f"{problems}: send the photo as one file in the multipart form field 'image'"},
                        status_code=422)


def create_app(estimator: Estimator | FollowedModel[Any], limits: ServeLimits = ServeLimits(),
               model: Path | None = None) -> FastAPI:
    """The API and the page around ``estimator``, or around whichever model a ``FollowedModel`` holds at
    each request; ``model`` is only reported by ``/health``."""
    served = estimator if isinstance(estimator, FollowedModel) else FollowedModel(ServedModel(estimator, model, None))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[_State]:
        # Created here so that the semaphore belongs to the loop that serves the requests.
        async with anyio.create_task_group() as tasks:
            if served.follows:
                tasks.start_soon(served.watch)
            yield {"slots": anyio.Semaphore(limits.max_concurrent)}
            tasks.cancel_scope.cancel()

    app = FastAPI(title="age_assets", summary="Ages of the faces in a photo", lifespan=lifespan,
                  exception_handlers={ServeError: _serve_error, HTTPException: _http_error,
                                      RequestValidationError: _invalid_request})
    body_limit = limits.max_upload_bytes + MULTIPART_OVERHEAD

    def upload_too_large(*_: object) -> JSONResponse:
        # The body is refused before its part headers are read, so the file name is unknown.
        return JSONResponse({"error": f"the upload is over the {_megabytes(limits.max_upload_bytes)} limit"},
                            status_code=413)

    app.add_exception_handler(413, upload_too_large)

    @app.middleware("http")
    async def refuse_declared_oversize(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                                       ) -> Response:
        """A body whose Content-Length is over the limit is refused, in JSON like the other errors,
        unsaved: read and thrown away up to ``MAX_DISCARDED_BYTES``, unread beyond.

        The route's own ``max_body_size`` counts the bytes of a body sent without Content-Length.
        """
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > body_limit:
            if int(length) <= MAX_DISCARDED_BYTES:
                async for _ in request.stream():
                    pass
            return upload_too_large()
        return await call_next(request)

    @asynccontextmanager
    async def inference_slot(request: Request, name: str) -> AsyncIterator[None]:
        """One of ``max_concurrent`` slots, waited for up to ``queue_timeout_s``; ServeError 503 after that."""
        slots: anyio.Semaphore = request.state.slots
        try:
            with anyio.fail_after(limits.queue_timeout_s):
                await slots.acquire()
        except TimeoutError:
            raise ServeError(503, f"{name}: the server is busy with other photos and no slot freed up within "
                                  f"{limits.queue_timeout_s:g} s; try again shortly") from None
        try:
            yield
        finally:
            slots.release()

    def analyse(data: bytes, name: str) -> Prediction:
        current = served.current.estimator  # this request's model, even if another is promoted meanwhile
        image = decode_photo(data, name, limits.max_pixels)
        faces = [_face(face) for face in current.faces(image)]
        message = f"{len(faces)} face{'s' if len(faces) > 1 else ''} found" if faces else "no face found"
        return Prediction(file=name, width=image.shape[1], height=image.shape[0], faces=faces, message=message)

    errors: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody} for status in (413, 415, 422, 500, 503)}

    @app.post("/predict", response_model=Prediction, responses=errors, max_body_size=body_limit)
    async def predict(request: Request, image: Annotated[UploadFile, File(description="one photo")]) -> Prediction:
        """Every face in the photo, boxed, with its age, its age bucket and the bucket probabilities."""
        name = image.filename or "the upload"
        if image.size is not None and image.size > limits.max_upload_bytes:
            raise ServeError(413, f"{name} is {_megabytes(image.size)}, over the "
                                  f"{_megabytes(limits.max_upload_bytes)} limit")
        data = await image.read()
        async with inference_slot(request, name):
            try:
                return await run_in_threadpool(analyse, data, name)
            except PhotoTooLarge as error:
                raise ServeError(413, str(error)) from error
            except PhotoError as error:
                raise ServeError(415, str(error)) from error
            except Exception as error:
                logger.exception("estimating ages in %s failed", name)
                raise ServeError(500, f"{name}: the age model failed on this picture "
                                      f"({type(error).__name__}: {error})") from error

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        current = served.current
        return Health(status="ok", image_size=current.estimator.image_size,
                      model=str(current.path) if current.path else None, fingerprint=current.fingerprint,
                      max_upload_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels)

    app.mount("/", StaticFiles(packages=[("age_assets.serving", "static")], html=True), name="page")
    return app


def serve(model: Path | Locate, host: str = "127.0.0.1", port: int = 8000, limits: ServeLimits = ServeLimits(),
          detect: bool = True) -> None:
    """Load ``model`` once and answer on ``host:port`` until interrupted; where ``model`` locates the
    model to serve (the promoted one), follow it as it changes."""
    if callable(model):
        app = create_app(FollowedModel.follow(model, lambda path: AgeEstimator(path, detect=detect)), limits)
    else:
        app = create_app(AgeEstimator(model, detect=detect), limits, model=model)
    uvicorn.run(app, host=host, port=port)
