"""Hostile ProcessAudioStream clients on gRPC's asyncio API, for the server tests and ``benchmarks/bench_soak.py``.

gRPC's asyncio client cannot share a process with a server running on another event loop, so the tests run these in
a child process: ``python tests/grpc_attacks.py ADDRESS ATTACK '{"kwarg": value}'`` prints one JSON list of
outcomes. Each outcome is ``{"code": gRPC status name, "details": ..., "status": [in-band code, message] or None,
"frames": n, "seconds": wall time}``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time

import grpc
import numpy as np
from nvidia_ace import audio_pb2
from nvidia_audio2face_3d import messages_pb2

END = messages_pb2.AudioWithEmotionStream(end_of_audio=messages_pb2.AudioWithEmotionStream.EndOfAudio())


def header(rate: int = 16000, channels: int = 1) -> messages_pb2.AudioWithEmotionStream:
    audio = audio_pb2.AudioHeader(channel_count=channels, samples_per_second=rate, bits_per_sample=16)
    return messages_pb2.AudioWithEmotionStream(
        audio_stream_header=messages_pb2.AudioWithEmotionStreamHeader(audio_header=audio)
    )


def audio(pcm: bytes, keys: int = 0, start: float = 0.0) -> messages_pb2.AudioWithEmotionStream:
    """Audio with ``keys`` timed emotions 1 ms apart from ``start`` s (about 23 bytes each on the wire)."""
    emotions = [
        messages_pb2.EmotionWithTimeCode(time_code=start + i * 0.001, emotion={"joy": 0.5}) for i in range(keys)
    ]
    body = messages_pb2.AudioWithEmotion(audio_buffer=pcm, emotions=emotions)
    return messages_pb2.AudioWithEmotionStream(audio_with_emotion=body)


def tone(seconds: float, rate: int = 16000, seed: int = 0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    return ((0.3 * np.sin(2 * np.pi * 180 * t) + noise) * 32767).astype("<i2").tobytes()


METHOD = "/nvidia_ace.services.a2f_controller.v1.A2FControllerService/ProcessAudioStream"


async def call(address: str, requests, metadata=None, pace: float = 0.0, timeout: float = 120.0) -> dict:
    """Send ``requests`` (messages, or their bytes; spaced ``pace`` s apart) while reading every answer; the call's
    outcome. Requests go out as bytes, so an attack can serialize a big message once and send it many times."""
    requests = [r if isinstance(r, bytes) else r.SerializeToString() for r in requests]
    started = time.perf_counter()
    status, frames = None, 0
    async with grpc.aio.insecure_channel(address) as channel:
        answer_type = messages_pb2.A2F3DAnimationDataStream
        method = channel.stream_stream(METHOD, request_serializer=None, response_deserializer=answer_type.FromString)
        rpc = method(metadata=metadata, timeout=timeout)

        async def write() -> None:
            try:
                for i, request in enumerate(requests):
                    if pace and i:
                        await asyncio.sleep(pace)
                    await rpc.write(request)
                await rpc.done_writing()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the call ended first; its status says why

        writer = asyncio.create_task(write())
        try:
            async for answer in rpc:
                part = answer.WhichOneof("stream_part")
                if part == "animation_data":
                    frames += 1
                elif part == "status":
                    status = [int(answer.status.code), answer.status.message]
            code, details = await rpc.code(), await rpc.details()
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details()
        writer.cancel()
    return {"code": code.name, "details": details or "", "status": status, "frames": frames,
            "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip


@functools.lru_cache(maxsize=4)
def _flood_message(keys: int) -> bytes:
    """100 ms of audio with ``keys`` timed emotions, serialized (built once: 140,000 keys take a second)."""
    return audio(tone(0.1), keys).SerializeToString()


async def key_flood(address: str, messages: int = 10, keys: int = 140_000, calls: int = 1, metadata=None) -> list:
    """``calls`` calls in a row, each a header then ``messages`` messages of ``keys`` timed emotions (3.2 MB each
    at 140,000) with 100 ms of audio, as fast as the server reads them."""
    flood = [_flood_message(keys)] * messages
    return [await call(address, [header(), *flood, END], metadata) for _ in range(calls)]


async def trickle(
    address: str, clients: int = 10, size: int = 2, every: float = 10.0, sends: int = 30, metadata=None
) -> list:
    """``clients`` streams at once, each a header then ``size`` bytes of audio every ``every`` s, ``sends`` times."""
    requests = [header(), *[audio(bytes(size))] * sends, END]
    return list(await asyncio.gather(*(call(address, requests, metadata, pace=every) for _ in range(clients))))


async def fast_writer(
    address: str, messages: int = 200, size: int = 3200, bad_header: bool = False, attempts: int = 5, metadata=None
) -> list:
    """Calls that write ``messages`` audio messages as fast as they can (after a bad header when asked): a refused
    call's status must not turn into INTERNAL on the client."""
    first = header(channels=2) if bad_header else header()
    requests = [first, *[audio(bytes(size))] * messages, END]
    return [await call(address, requests, metadata) for _ in range(attempts)]


async def slot_flood(address: str, calls: int = 12, seconds: float = 0.5, metadata=None) -> list:
    """``calls`` calls at once, each a short clip sent at once: the ones past the stream limit are refused."""
    requests = [header(), audio(tone(seconds)), END]
    return list(await asyncio.gather(*(call(address, requests, metadata) for _ in range(calls))))


@functools.lru_cache(maxsize=2)
def _big_message(size: int) -> bytes:
    return audio(bytes(size)).SerializeToString()


async def big_message(address: str, size: int = 100 * 1024 * 1024, metadata=None) -> list:
    """One message of ``size`` bytes of audio (over the server's message limit)."""
    return [await call(address, [header(), _big_message(size), END], metadata)]


async def big_message_sync(address: str, size: int = 100 * 1024 * 1024, metadata=None) -> list:
    """:func:`big_message` on gRPC's synchronous client, which reports the status the server sent even when the
    write of the message is cut off by it (the asyncio client reports INTERNAL then: grpc/grpc#36066)."""

    def run() -> dict:
        started = time.perf_counter()
        requests = [header().SerializeToString(), _big_message(size), END.SerializeToString()]
        with grpc.insecure_channel(address) as channel:
            method = channel.stream_stream(METHOD, request_serializer=None, response_deserializer=None)
            try:
                answers = list(method(iter(requests), metadata=metadata))
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as exc:
                answers, code, details = [], exc.code(), exc.details()
        return {"code": code.name, "details": details or "", "status": None, "frames": len(answers),
                "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip

    return [await asyncio.to_thread(run)]


ATTACKS = {f.__name__: f for f in (key_flood, trickle, fast_writer, slot_flood, big_message, big_message_sync)}


def main() -> None:
    address, name = sys.argv[1], sys.argv[2]
    kwargs = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    if kwargs.get("metadata") is not None:
        kwargs["metadata"] = tuple(tuple(pair) for pair in kwargs["metadata"])
    print(json.dumps(asyncio.run(ATTACKS[name](address, **kwargs))))


if __name__ == "__main__":
    main()
