//! Answering first and working after: async handlers send their response, finish its body,
//! and only then do what the caller need not wait for (chained deliveries, a call's hooks).

use futures::SinkExt;
use spin_sdk::http::{Fields, OutgoingResponse, Response, ResponseOutparam};

/// Sends `response` and finishes its body, so the caller has its answer.
pub async fn respond(out: ResponseOutparam, response: Response) {
    let headers: Vec<(String, Vec<u8>)> = response
        .headers()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let outgoing =
        OutgoingResponse::new(Fields::from_list(&headers).unwrap_or_else(|_| Fields::new()));
    let _ = outgoing.set_status_code(*response.status());
    let mut body = outgoing.take_body();
    out.set(outgoing);
    let _ = body.send(response.into_body()).await;
    let _ = body.close().await;
}
