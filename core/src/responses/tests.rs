use serde_json::{json, Map, Value};

use super::*;

fn fixture(name: &str) -> String {
    let path = format!("{}/fixtures/responses/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_fixture(name: &str) -> Map<String, Value> {
    serde_json::from_str(&fixture(name)).unwrap()
}

fn refused(body: Value) -> String {
    let body = body.as_object().unwrap().clone();
    to_chat(&body).unwrap_err().param.unwrap()
}

/// Feeds a chat SSE body through the translator in `slice`-byte pieces; returns the events.
fn stream_events(body: &str, slice: usize) -> Vec<(String, Value)> {
    let envelope = Envelope::new(&json_fixture("request.json"), "resp_t1".into(), 1_700_000_000);
    let mut translator = ResponsesStream::new(envelope);
    let mut bytes = Vec::new();
    for piece in body.as_bytes().chunks(slice) {
        bytes.extend(translator.push(piece));
    }
    bytes.extend(translator.finish());
    let mut parser = crate::sse::SseParser::new();
    let all: Vec<u8> = bytes.iter().flat_map(|b| b.to_vec()).collect();
    parser.push(&all).unwrap().into_iter().map(|e| (e.event, serde_json::from_str(&e.data).unwrap())).collect()
}

#[test]
fn responses_request_translates_to_chat_with_tools_images_history_and_format() {
    let chat = to_chat(&json_fixture("request.json")).unwrap();
    let expected: Value = serde_json::from_str(&fixture("request.expected.json")).unwrap();
    assert_eq!(serde_json::to_value(&chat).unwrap(), expected);
}

#[test]
fn a_string_input_is_one_user_message() {
    let body = json!({"model": "m", "input": "hi", "max_output_tokens": 5});
    let chat = to_chat(body.as_object().unwrap()).unwrap();
    assert_eq!(
        serde_json::to_value(&chat).unwrap(),
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5})
    );
}

#[test]
fn what_chat_cannot_express_is_refused_naming_the_field() {
    assert_eq!(refused(json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"})), "previous_response_id");
    assert_eq!(refused(json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]})), "tools[0].type");
    assert_eq!(refused(json!({"model": "m", "input": "hi", "store": true})), "store");
    assert_eq!(refused(json!({"model": "m", "input": "hi", "background": true})), "background");
    assert_eq!(refused(json!({"model": "m", "input": "hi", "include": ["reasoning.encrypted_content"]})), "include");
    assert_eq!(refused(json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]})), "input[0].type");
    assert_eq!(
        refused(
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]})
        ),
        "input[0].content[0].type"
    );
    assert_eq!(refused(json!({"model": "m"})), "input");
    assert_eq!(refused(json!({"model": "m", "input": 3})), "input");
}

#[test]
fn a_chat_completion_becomes_a_response_object() {
    let request = json_fixture("request.json");
    let envelope = Envelope::new(&request, "resp_t1".into(), 1_700_000_000);
    let completion: Value = serde_json::from_str(&fixture("chat_completion.json")).unwrap();
    let expected: Value = serde_json::from_str(&fixture("response.expected.json")).unwrap();
    assert_eq!(from_completion(&completion, &envelope), expected);
}

#[test]
fn a_chat_stream_becomes_responses_events_in_order_whatever_the_chunking() {
    let body = fixture("chat_stream.sse");
    let whole = stream_events(&body, body.len());
    for slice in [1, 7, 64] {
        assert_eq!(stream_events(&body, slice), whole, "slice {slice}");
    }
    let kinds: Vec<&str> = whole.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (kind, event)) in whole.iter().enumerate() {
        assert_eq!(event["type"], kind.as_str());
        assert_eq!(event["sequence_number"], i);
    }
    // The second call's deltas keep their own output index, interleaved with the first's.
    assert_eq!(whole[13].1["output_index"], 3);
    assert_eq!(whole[14].1["output_index"], 2);
    let completed = &whole.last().unwrap().1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][1]["content"][0]["text"], "Let me check.");
    assert_eq!(completed["output"][2]["call_id"], "toolu_A");
    assert_eq!(completed["output"][2]["arguments"], "{\"city\":\"Oslo\"}");
    assert_eq!(completed["output"][3]["name"], "get_time");
    assert_eq!(completed["output"][0]["summary"][0]["text"], "The user wants weather.");
    assert_eq!(completed["usage"]["input_tokens_details"]["cached_tokens"], 4);
    assert_eq!(completed["usage"]["output_tokens_details"]["reasoning_tokens"], 5);
}

#[test]
fn a_broken_chat_stream_ends_with_error_and_response_failed() {
    let events = stream_events(&fixture("chat_stream_broken.sse"), 5);
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["error", "response.failed"]);
    assert!(!kinds.contains(&"response.completed"));
    assert_eq!(events[kinds.len() - 2].1["code"], "stream_interrupted");
    assert_eq!(events.last().unwrap().1["response"]["status"], "failed");
}

#[test]
fn a_chat_stream_cut_before_done_fails() {
    let body = fixture("chat_stream.sse");
    let cut = &body[..body.find("data: [DONE]").unwrap()];
    let events = stream_events(cut, 11);
    assert_eq!(events.last().unwrap().0, "response.failed");
    assert_eq!(events[events.len() - 2].1["code"], "stream_interrupted");
}
