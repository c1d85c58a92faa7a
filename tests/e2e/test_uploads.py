"""Audio uploads (`multipart/form-data`) through the gateway with the official SDK: routed by the
form's `model`, rewritten to the provider's id, the file passed through byte for byte."""

from __future__ import annotations

import hashlib
import io

import openai
import pytest


def audio(size: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(size))


@pytest.mark.parametrize("size", [3_000, 2_500_000], ids=["small-held-whole", "large-streamed"])
def test_transcription_upload_reaches_the_provider_intact(gateway, receiver, upstream, size):
    data = audio(size)
    out = gateway.client().audio.transcriptions.create(
        model="recorder/whisper-1", file=("clip.mp3", io.BytesIO(data), "audio/mpeg"), language="en")
    assert out.text == f"{size} bytes heard"
    seen = receiver.received()
    sent = seen["upstream_requests"][-1]
    assert sent["path"] == "/v1/audio/transcriptions"
    assert sent["body"]["fields"]["model"] == "whisper-1" and sent["body"]["fields"]["language"] == "en"
    assert sent["body"]["file"] == {"name": "file", "size": size, "sha256": hashlib.sha256(data).hexdigest()}
    headers = seen["upstream_headers"][-1]
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(headers["content-length"]) == sent["body"]["length"]


def test_translation_upload_goes_to_the_translations_endpoint(gateway, receiver, upstream):
    out = gateway.client().audio.translations.create(
        model="recorder/whisper-1", file=("clip.wav", io.BytesIO(audio(500)), "audio/wav"))
    assert out.text == "500 bytes heard"
    assert receiver.received()["upstream_requests"][-1]["path"] == "/v1/audio/translations"


def test_an_upload_to_a_provider_without_the_endpoint_is_a_400(gateway, receiver, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().audio.transcriptions.create(
            model="anthropic/claude-sonnet-4-6", file=("clip.mp3", io.BytesIO(audio(100)), "audio/mpeg"))
    assert err.value.body["code"] == "unsupported_endpoint"
    assert receiver.received()["upstream_requests"] == []
