//! W3C trace context across NATS: the caller writes its current span's context into the
//! `traceparent` header of a request or an event, the receiver makes its span a child of it, so
//! one client request is one trace however many workers and streams it crosses.
//!
//! The spans are `tracing` spans; the OpenTelemetry layer (installed by the process when tracing
//! is on) gives them their ids. Without it every function here does nothing, and a header that
//! does not parse is ignored: the receiver's span starts a new trace.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::headers;

/// The `traceparent` of `span`, if it is traced.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut header = Traceparent(None);
    TraceContextPropagator::new().inject_context(&cx, &mut header);
    header.0
}

/// The `traceparent` of the current span, if it is traced.
pub fn current() -> Option<String> {
    traceparent(&tracing::Span::current())
}

/// Makes `span` a child of the remote span `traceparent` names. Nothing, a header that does not
/// parse, or no tracing: `span` keeps its own parent (none, for a request: a new trace).
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent else { return };
    let cx = TraceContextPropagator::new().extract(&Traceparent(Some(value.to_owned())));
    if cx.span().span_context().is_valid() {
        // Fails only for a span already started elsewhere; ours are fresh.
        let _ = span.set_parent(cx);
    }
}

/// What a receiver does with a message's headers: `span` becomes a child of the sender's span
/// (its `traceparent` header) and records its ids for the log lines inside it.
pub fn follow(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    set_parent(span, headers.and_then(|h| h.get(headers::TRACEPARENT)).map(|v| v.as_str()));
    record_ids(span);
}

/// Records `span`'s trace and span ids in its `trace_id` and `span_id` fields (declared
/// `Empty`), so every log line inside it names them; nothing when tracing is off.
pub fn record_ids(span: &tracing::Span) {
    let cx = span.context();
    let ids = cx.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
        span.record("span_id", tracing::field::display(ids.span_id()));
    }
}

/// A carrier with the one header SoulChat propagates (no `tracestate`: nothing sets it).
struct Traceparent(Option<String>);

impl Injector for Traceparent {
    fn set(&mut self, key: &str, value: String) {
        if key.eq_ignore_ascii_case(headers::TRACEPARENT) {
            self.0 = Some(value);
        }
    }
}

impl Extractor for Traceparent {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.as_deref().filter(|_| key.eq_ignore_ascii_case(headers::TRACEPARENT))
    }

    fn keys(&self) -> Vec<&str> {
        vec![headers::TRACEPARENT]
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn traced<T>(f: impl FnOnce() -> T) -> T {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f)
    }

    #[test]
    fn a_span_continues_the_remote_trace_and_propagates_itself() {
        let header = traced(|| {
            let span = tracing::info_span!("request");
            set_parent(&span, Some(PARENT));
            traceparent(&span)
        })
        .expect("a traced span has a traceparent");
        let parts: Vec<&str> = header.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
        assert_ne!(parts[2], "00f067aa0ba902b7", "its own span id");
    }

    #[test]
    fn a_header_that_does_not_parse_starts_a_new_trace() {
        for garbage in ["", "not a traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf9"] {
            let header = traced(|| {
                let span = tracing::info_span!("request");
                set_parent(&span, Some(garbage));
                traceparent(&span)
            })
            .expect("a traced span has a traceparent");
            assert!(!header.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{garbage:?} gave {header}");
        }
    }

    #[test]
    fn without_tracing_nothing_is_propagated() {
        let span = tracing::info_span!("request");
        set_parent(&span, Some(PARENT));
        assert_eq!(traceparent(&span), None);
    }
}
