//! One HTTP request is one trace: the gateway's route span, the worker that answers it and its
//! transactions, the calls its saga makes and the consumers reacting to the event it records all
//! share the trace id, each span a child of the one that caused it, as a real OTLP/HTTP receiver
//! sees them; a chat message likewise, down to the gateway's fan-out.
//!
//! A test binary of its own: the subscriber with the OpenTelemetry layer is process-wide, and
//! every role of the test mesh runs in this process, so they all export through it (identified
//! by their spans' names rather than by a per-process `service.name`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use soulchat_runtime::telemetry::{self, Export, LogFormat, Protocol, Telemetry};
use soulchat_testkit::{Backend, Mesh, OtlpReceiver, ReceivedSpan};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "soulchat-request-id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_across_the_roles() {
    let receiver = OtlpReceiver::start().await;
    let export = Export {
        endpoint: Some(receiver.traces_url()),
        protocol: Protocol::HttpBinary,
        service_name: "soulchat".into(),
    };
    let telemetry = Arc::new(telemetry::install(LogFormat::Text, Some(export)).expect("installing the tracer"));
    let mesh = Mesh::start(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let user =
        json!({"user": {"username": "traced", "email": "traced@example.com", "password": "correct horse battery"}});

    let registered = http
        .post(format!("{}/api/users", mesh.api.base))
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .json(&user)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(registered.status(), 201);
    assert!(registered.headers().get(REQUEST_ID).is_some_and(|id| !id.is_empty()), "the response names its request id");

    // The notification worker's reaction to user.created is the last span to arrive.
    let spans = wait_for(&telemetry, &receiver, |spans| {
        spans.iter().any(|s| {
            s.trace_id == TRACE && s.attributes.get("durable").is_some_and(|d| d == "notification-user-created")
        })
    })
    .await;
    let trace: HashMap<&str, &ReceivedSpan> =
        spans.iter().filter(|s| s.trace_id == TRACE).map(|s| (s.span_id.as_str(), s)).collect();
    let find =
        |name: &str, kind: &str| {
            trace.values().find(|s| s.name == name && s.kind == kind).copied().unwrap_or_else(|| {
                panic!("no {kind} span {name} in the trace: {:#?}", trace.values().collect::<Vec<_>>())
            })
        };
    let ancestors = |span: &ReceivedSpan| {
        std::iter::successors(trace.get(span.parent_span_id.as_str()).copied(), |s| {
            trace.get(s.parent_span_id.as_str()).copied()
        })
        .map(|s| s.span_id.clone())
        .collect::<Vec<_>>()
    };

    // The gateway's route span continues the client's trace.
    let route = find("POST /api/users", "SPAN_KIND_SERVER");
    assert_eq!(route.parent_span_id, CLIENT_SPAN);
    // The user worker answers the gateway's call, as a child of it.
    let call = find("soulchat.user.v1.register", "SPAN_KIND_CLIENT");
    let register = find("soulchat.user.v1.register", "SPAN_KIND_SERVER");
    assert_eq!(call.parent_span_id, route.span_id);
    assert_eq!(register.parent_span_id, call.span_id);
    assert_eq!(register.attributes.get("request_id"), route.attributes.get("request_id"));
    assert!(
        trace.values().any(|s| s.name == "db transaction" && s.parent_span_id == register.span_id),
        "the user worker's transactions"
    );
    // The saga's call to the profile worker, inside the user worker's handling.
    let profile = find("soulchat.profile.v1.create", "SPAN_KIND_SERVER");
    assert!(ancestors(profile).contains(&register.span_id), "profile.create under user.register");
    // Consumers of user.created, through the outbox, the relay and JetStream.
    let reaction = trace
        .values()
        .find(|s| s.attributes.get("durable").is_some_and(|d| d == "notification-user-created"))
        .expect("the notification worker's reaction");
    assert_eq!(reaction.name, "soulchat.events.user.created");
    assert_eq!(reaction.kind, "SPAN_KIND_CONSUMER");
    assert!(ancestors(reaction).contains(&register.span_id), "the reaction under user.register");
    // Nothing dangles: every span's parent is in the trace, but the client's.
    for span in trace.values() {
        assert!(
            span.parent_span_id == CLIENT_SPAN || trace.contains_key(span.parent_span_id.as_str()),
            "{span:?} has a parent outside the trace"
        );
    }

    // A traceparent that does not parse is ignored: the request succeeds in a new trace.
    let login = http
        .post(format!("{}/api/users/login", mesh.api.base))
        .header("traceparent", "00-not-a-trace-01")
        .json(&json!({"user": {"email": "traced@example.com", "password": "correct horse battery"}}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(login.status(), 200);
    let request_id = login.headers()[REQUEST_ID].to_str().unwrap().to_owned();
    let is_login = |s: &ReceivedSpan| s.name == "soulchat.user.v1.login" && s.kind == "SPAN_KIND_SERVER";
    let spans = wait_for(&telemetry, &receiver, |spans| {
        spans.iter().any(|s| is_login(s) && s.attributes.get("request_id") == Some(&request_id))
    })
    .await;
    let route = spans
        .iter()
        .find(|s| s.name == "POST /api/users/login" && s.attributes.get("request_id") == Some(&request_id))
        .expect("the login's route span");
    assert!(route.parent_span_id.is_empty(), "a new trace: {route:?}");
    assert_ne!(route.trace_id, TRACE);
    let handled = spans.iter().find(|s| is_login(s) && s.attributes.get("request_id") == Some(&request_id)).unwrap();
    assert_eq!(handled.trace_id, route.trace_id);

    // A chat message: the route, the chat worker's send, its commit, the relay, and the fan-out
    // of the committed event at the gateway (a consumer of SOULCHAT_CHAT) in one trace.
    let sender = registered.json::<serde_json::Value>().await.unwrap()["user"]["token"].as_str().unwrap().to_owned();
    mesh.api.register("listener", "correct horse battery").await;
    let direct = mesh.api.post("/api/conversations/direct", Some(&sender), json!({"username": "listener"})).await;
    let conversation = direct.body["conversation"]["id"].as_str().expect("a conversation").to_owned();
    let chat_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let sent = http
        .post(format!("{}/api/conversations/{conversation}/messages", mesh.api.base))
        .header("Authorization", format!("Token {sender}"))
        .header("traceparent", format!("00-{chat_trace}-{CLIENT_SPAN}-01"))
        .json(&json!({"client_id": "t-1", "content": "traced", "kind": "text"}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(sent.status(), 201);
    let spans = wait_for(&telemetry, &receiver, |spans| {
        spans.iter().any(|s| s.trace_id == chat_trace && s.name == "chat fan-out")
    })
    .await;
    let trace: HashMap<&str, &ReceivedSpan> =
        spans.iter().filter(|s| s.trace_id == chat_trace).map(|s| (s.span_id.as_str(), s)).collect();
    let named = |name: &str, kind: &str| {
        *trace.values().find(|s| s.name == name && s.kind == kind).unwrap_or_else(|| panic!("no {kind} span {name}"))
    };
    let route = named("POST /api/conversations/{id}/messages", "SPAN_KIND_SERVER");
    assert_eq!(route.parent_span_id, CLIENT_SPAN);
    let send = named("soulchat.chat.v1.send", "SPAN_KIND_SERVER");
    let fan_out = named("chat fan-out", "SPAN_KIND_CONSUMER");
    let lineage = |span: &ReceivedSpan| {
        std::iter::successors(trace.get(span.parent_span_id.as_str()).copied(), |s| {
            trace.get(s.parent_span_id.as_str()).copied()
        })
        .map(|s| s.span_id.clone())
        .collect::<Vec<_>>()
    };
    assert!(lineage(send).contains(&route.span_id), "chat.send under the route");
    assert_eq!(fan_out.parent_span_id, send.span_id, "the fan-out continues the send that committed it");

    mesh.shutdown().await;
    let telemetry = Arc::try_unwrap(telemetry).ok().expect("the one handle");
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.unwrap();
}

/// Flushes the exporter until the received spans satisfy `done` (20 s at most).
async fn wait_for(
    telemetry: &Arc<Telemetry>,
    receiver: &OtlpReceiver,
    done: impl Fn(&[ReceivedSpan]) -> bool,
) -> Vec<ReceivedSpan> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let flushing = telemetry.clone();
        tokio::task::spawn_blocking(move || flushing.flush()).await.unwrap();
        let spans = receiver.spans();
        if done(&spans) {
            return spans;
        }
        assert!(Instant::now() < deadline, "the spans did not arrive within 20 s: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
