"""Concurrent requests: inference off the event loop, one predictor call at a time, bounded admission (503)."""

from __future__ import annotations

import asyncio
import threading

import httpx
from service_helpers import encode, grey

from rtvp.service import ServeSettings, create_app
from rtvp.service.testing import FakePredictor


async def _post_many(app, requests: list[dict]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
        png = encode(grey(96, 64))

        async def one(fields: dict) -> httpx.Response:
            return await client.post("/v1/detect", files={"image": ("a.png", png, "image/png")}, data=fields)

        return await asyncio.gather(*(one(f) for f in requests))


class ThreadRecorder(FakePredictor):
    """Records the thread each predict call runs on."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.threads: set[int] = set()

    def predict(self, sources, prompts=None, save_maps=False):
        self.threads.add(threading.get_ident())
        return super().predict(sources, prompts, save_maps)


def test_parallel_requests_are_serialized_and_do_not_mix_prompts():
    fake = ThreadRecorder(delay_s=0.02)
    app = create_app(fake, ServeSettings(workers=4))
    prompts = [",".join(f"term{i}-{k}" for k in range(1 + i % 4)) for i in range(12)]
    loop_thread = threading.get_ident()
    responses = asyncio.run(_post_many(app, [{"prompts": p} for p in prompts]))
    assert [r.status_code for r in responses] == [200] * 12
    for p, r in zip(prompts, responses, strict=True):  # each response carries its own prompts only
        assert [d["label"] for d in r.json()["detections"]] == p.split(",")
    assert fake.calls == 12
    assert fake.overlaps == 0  # the lock held: no two predict calls ran at once
    assert loop_thread not in fake.threads  # inference ran in worker threads, not on the event loop


def test_admission_bound_returns_503_busy():
    fake = FakePredictor(delay_s=0.3)
    app = create_app(fake, ServeSettings(workers=1, max_queue=1))
    responses = asyncio.run(_post_many(app, [{"prompts": "hole"}] * 5))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 503, 503, 503]
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.json()["error"]["code"] == "busy" and busy.headers["retry-after"] == "1"
    assert app.state.runner.admitted == 0  # every admitted request released its slot


def test_failed_request_releases_its_slot():
    fake = FakePredictor()
    app = create_app(fake, ServeSettings(workers=1, max_queue=1))
    for _ in range(3):  # one after the other: each failure must give its slot back
        assert asyncio.run(_post_many(app, [{"prompts": "x" * 300}]))[0].status_code == 422
    assert app.state.runner.admitted == 0
    assert [r.status_code for r in asyncio.run(_post_many(app, [{"prompts": "hole"}] * 2))] == [200, 200]



def _asks_then_detect(max_queue: int):
    """Three /v1/ask requests wait on a slow answerer while one /v1/detect arrives (workers=1)."""
    import time

    from rtvp.tasks.vqa import Answer

    class SlowLLM:
        def answer(self, question, facts):
            time.sleep(1.0)
            return Answer("slow", [], [], "llm:stub")

    app = create_app(FakePredictor(), ServeSettings(workers=1, max_queue=max_queue))
    app.state.answerer = SlowLLM()

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            files = {"image": ("a.png", encode(grey(32, 32)), "image/png")}
            asks = [asyncio.create_task(client.post("/v1/ask", files=files, data={"question": "what?"}))
                    for _ in range(3)]
            while app.state.runner.admitted < 3 or app.state.runner.lock.locked():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            detect = await client.post("/v1/detect", files=files, data={"prompts": "hole"})
            asks_pending = not any(t.done() for t in asks)
            return await asyncio.gather(*asks), detect, asks_pending

    return asyncio.run(scenario())


def test_slow_answerer_does_not_hold_the_worker():
    asks, detect, asks_pending = _asks_then_detect(max_queue=8)
    assert detect.status_code == 200 and asks_pending  # detect ran while all three asks waited on the LLM
    assert [r.json()["answer"] for r in asks] == ["slow"] * 3


def test_slow_answerer_keeps_its_admission_slot():
    asks, detect, asks_pending = _asks_then_detect(max_queue=2)
    assert detect.status_code == 503 and asks_pending  # workers + max_queue = 3 slots, all held by the asks
    assert [r.status_code for r in asks] == [200] * 3
