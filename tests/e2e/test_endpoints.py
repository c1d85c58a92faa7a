"""The other OpenAI endpoints through the gateway, with the official SDK as the client."""

from __future__ import annotations

import openai
import pytest

from test_chat import last_request


def test_embeddings_through_openai(gateway, upstream):
    out = gateway.client().embeddings.create(model="openai/text-embedding-3-small", input=["hello", "world"])
    assert len(out.data) == 2 and len(out.data[0].embedding) > 0
    sent = last_request(upstream, "/v1/embeddings")["body"]
    assert sent["model"] == "text-embedding-3-small" and sent["input"] == ["hello", "world"]


@pytest.mark.parametrize("model, path", [("ollama/all-minilm", "/api/embed"),
                                         ("gemini-embed/gemini-embedding-001", "/v1beta/models/gemini-embedding-001:batchEmbedContents")])
def test_embeddings_translated_for_native_apis(gateway, receiver, upstream, model, path):
    out = gateway.client().embeddings.create(model=model, input=["one", "two"])
    assert [d.index for d in out.data] == [0, 1] and len(out.data[0].embedding) > 0
    assert receiver.received()["upstream_requests"][-1]["path"] == path


def test_image_generation_through_openai(gateway, upstream):
    out = gateway.client().images.generate(model="openai/dall-e-3", prompt="a lighthouse", n=1, size="1024x1024")
    assert out.data
    assert last_request(upstream, "/v1/images/generations")["body"]["prompt"] == "a lighthouse"


def test_responses_api_through_openai(gateway, upstream):
    out = gateway.client().responses.create(model="openai/gpt-4o", input="Say hi")
    assert out.output_text
    assert last_request(upstream, "/v1/responses")["body"]["model"] == "gpt-4o"


def test_streamed_responses_api_through_openai(gateway, upstream):
    with gateway.client().responses.stream(model="openai/gpt-4o", input="Tell a story") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text and final.output_text == text


def test_speech_audio_streams_through(gateway, receiver, upstream):
    with gateway.client().audio.speech.with_streaming_response.create(
        model="recorder/tts-1", voice="alloy", input="hello") as response:
        assert response.headers["content-type"] == "audio/mpeg"
        audio = b"".join(response.iter_bytes())
    assert audio == b"ID3\x00\x01\x02tail"


def test_moderations_through_openai_compatible_provider(gateway, receiver, upstream):
    out = gateway.client().moderations.create(model="recorder/omni-moderation-latest", input="hello")
    assert out.results[0].flagged is False
    assert receiver.received()["upstream_requests"][-1]["body"]["model"] == "omni-moderation-latest"


@pytest.mark.parametrize("call", ["embeddings", "images", "speech", "moderations"])
def test_a_provider_without_the_endpoint_is_a_400_naming_it(gateway, upstream, call):
    client = gateway.client()
    model = "anthropic/claude-sonnet-4-6"
    with pytest.raises(openai.BadRequestError) as err:
        if call == "embeddings":
            client.embeddings.create(model=model, input="x")
        elif call == "images":
            client.images.generate(model=model, prompt="x")
        elif call == "speech":
            client.audio.speech.create(model=model, voice="alloy", input="x")
        else:
            client.moderations.create(model=model, input="x")
    assert err.value.body["code"] == "unsupported_endpoint"
    assert "anthropic" in err.value.message
    assert upstream.requests() == []
