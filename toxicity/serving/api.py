"""The LitServe API run by each inference worker: loads the classifier once, scores batches of requests,
and scores a failed batch again one request at a time, so no request can fail another."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
from typing import NamedTuple

import litserve as ls
import numpy as np
from fastapi import Request

from toxicity.inference.onnx import OnnxToxicityClassifier
from toxicity.inference.scorer import ToxicityClassifier
from toxicity.serving.internals import Workers
from toxicity.serving.processes import die_with_parent
from toxicity.serving.schemas import PredictRequest, Refused

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- the model
class ToxicityAPI(ls.LitAPI):
    """Runs in each inference worker: loads the classifier once and scores batches of requests."""

    def __init__(self, source: str, backend: str, threads: int, **options):
        super().__init__(**options)
        self.source, self.backend, self.threads = source, backend, threads

    def setup(self, device):
        import torch

        # the parent stops this worker once its requests are answered; a signal to the whole process group
        # (Ctrl+C, systemd's stop) must not drop the requests it is scoring
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        die_with_parent(multiprocessing.parent_process().pid)
        torch.set_num_threads(self.threads)
        if self.backend == "torch":
            self.classifier = ToxicityClassifier.from_checkpoint(self.source, device="cpu")
        else:
            self.classifier = OnnxToxicityClassifier.from_folder(
                self.source, int8=self.backend == "onnx-int8", threads=self.threads
            )

    def decode_request(self, request: PredictRequest):
        return request

    def predict(self, requests):
        batched = isinstance(requests, list)
        requests = requests if batched else [requests]
        try:
            scored = self.score(requests)
        except Exception:
            log.exception("scoring a batch of %d requests failed; scoring them one by one", len(requests))
            scored = [self.score_alone(request) for request in requests]
        return scored if batched else scored[0]

    def score(self, requests: list[PredictRequest]) -> list[Scored]:
        probs = self.classifier.predict_proba([text for request in requests for text in request.texts])
        ends = np.cumsum([len(request.texts) for request in requests])[:-1]
        return [
            Scored(part, request.threshold, self.explain(request) if request.explain else None)
            for part, request in zip(np.split(probs, ends), requests)
        ]

    def explain(self, request: PredictRequest) -> list[dict]:
        """Each text's word attributions per tag (ToxicityClassifier.explain), as plain JSON."""
        return [explanation.to_dict() for explanation in self.classifier.explain(request.texts)]

    def score_alone(self, request: PredictRequest) -> Scored | Failed:
        try:
            return self.score([request])[0]
        except Exception:
            log.exception("scoring a request alone failed")
            return Failed(500, "scoring this request failed; see the server log")

    def encode_response(self, scored: Scored | Failed) -> Rows | Failed:
        """Arrays, as lists (the HTTP process's route builds its own JSON from them)."""
        if isinstance(scored, Failed):
            return scored
        probs, threshold = scored.probs, scored.threshold
        unscored = (~np.isfinite(probs)).any(axis=1).nonzero()[0]
        if len(unscored):  # a text that failed on its own (BatchScorer scores it NaN)
            return Failed(500, f"texts[{unscored[0]}] could not be scored; see the server log")
        cutoffs = None if threshold is None else self.classifier.thresholds_for(threshold).tolist()
        return Rows(probs.tolist(), cutoffs, scored.explanations)


class Rows(NamedTuple):
    """A request's scores as a worker returns them: a row of probabilities per text, in the model's tag
    order, and the cut-off per tag when the request asked for decisions."""

    probabilities: list[list[float]]
    cutoffs: list[float] | None = None
    explanations: list[dict] | None = None  # per text, when the request asked to explain


class Scored(NamedTuple):
    probs: np.ndarray
    threshold: float | str | None
    explanations: list[dict] | None = None


class Failed(NamedTuple):
    """A request that failed in a worker, answered alone: LitServe's batched loop fails a whole batch on any
    exception, so the worker returns this and the HTTP process turns it into the refusal."""

    status: int
    message: str


async def read_body(request: Request, read_timeout: float) -> bytes:
    try:
        return await asyncio.wait_for(request.body(), read_timeout)
    except TimeoutError:
        raise Refused(408, f"the body took over {read_timeout:g} s to arrive (--read-timeout)") from None


async def score(workers: Workers, request: PredictRequest) -> Rows:
    result = await workers.submit(request)
    if isinstance(result, Failed):
        raise Refused(result.status, result.message)
    return result
