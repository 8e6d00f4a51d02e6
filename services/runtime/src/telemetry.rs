//! What a process says about itself: log lines on stderr (text for a person at a terminal, JSON
//! lines for a collector) and, when an OTLP endpoint is configured, its spans as OpenTelemetry
//! traces.
//!
//! Both come from the same `tracing` spans: the runtime's `request` and `event` spans and the
//! gateway's `http` span carry the request id, and once tracing is on also `trace_id` and
//! `span_id`, so every line logged inside them names the request and the trace it belongs to.
//! The export honours the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `..._TRACES_ENDPOINT`; nothing is exported without one), `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (`http/protobuf`, the default, or `http/json`), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and its argument.

use std::io::IsTerminal;
use std::str::FromStr;

use anyhow::Context;
use opentelemetry::trace::TracerProvider;
pub use opentelemetry_otlp::Protocol;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For a person: one line per event, the spans' fields before it, colours on a terminal.
    Text,
    /// One JSON object per line, the spans' fields under `spans`.
    Json,
}

impl LogFormat {
    /// Text on a terminal, JSON otherwise (a container's log collector, a file).
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() { LogFormat::Text } else { LogFormat::Json }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not a log format: use text or json")),
        }
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct Export {
    /// The traces URL (`.../v1/traces`); `None`: from the `OTEL_EXPORTER_OTLP_*` variables.
    pub endpoint: Option<String>,
    pub protocol: Protocol,
    /// `service.name`, unless `OTEL_SERVICE_NAME` says otherwise.
    pub service_name: String,
}

impl Export {
    /// The export the standard variables ask for, if any: `None` without an OTLP endpoint.
    pub fn from_env(service_name: &str) -> anyhow::Result<Option<Export>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() && var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
            return Ok(None);
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL")) {
            None => Protocol::HttpBinary,
            Some(p) if p == "http/protobuf" => Protocol::HttpBinary,
            Some(p) if p == "http/json" => Protocol::HttpJson,
            Some(p) => {
                anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL={p:?} is not supported: use http/protobuf or http/json")
            }
        };
        Ok(Some(Export { endpoint: None, protocol, service_name: service_name.to_owned() }))
    }

    fn provider(&self) -> anyhow::Result<SdkTracerProvider> {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(self.protocol);
        if let Some(endpoint) = &self.endpoint {
            exporter = exporter.with_endpoint(endpoint);
        }
        let exporter = exporter.build().context("the OTLP span exporter")?;
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(self.service_name.clone());
        }
        // The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
    }
}

/// The installed logging and tracing; [`Telemetry::shutdown`] exports what is still buffered.
#[must_use = "shut it down at exit, or buffered spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends every span ended so far (blocking: call it off the async threads).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(e) = provider.force_flush()
        {
            tracing::warn!("exporting spans: {e}");
        }
    }

    /// Exports what is buffered and stops the exporter (blocking).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("exporting the last spans: {e}");
        }
    }
}

/// The log-line layer, writing to `writer`.
fn lines<S, W>(format: LogFormat, ansi: bool, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
    }
}

/// Installs the process-wide subscriber: log lines in `format` at `RUST_LOG`'s levels (default
/// `info`), and spans exported as `export` says, at `info` whatever `RUST_LOG` says (a quieter
/// log must not cut the traces). Fails if a subscriber is installed already.
pub fn install(format: LogFormat, export: Option<Export>) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let lines = lines(format, std::io::stderr().is_terminal(), std::io::stderr);
    let provider = export.map(|e| e.provider()).transpose()?;
    // Every span is built, sampled or not: no busy/idle clocks, threads or source locations on it.
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("soulchat"))
            .with_tracked_inactivity(false)
            .with_threads(false)
            .with_location(false)
            .with_filter(LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init()
        .context("installing the logger")?;
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn a_json_line_inside_a_request_names_the_request_and_its_trace() {
        let captured = Captured::default();
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(lines(LogFormat::Json, false, captured.clone()))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                trace_id = tracing::field::Empty,
                span_id = tracing::field::Empty
            );
            soulchat_subjects::trace::set_parent(
                &span,
                Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            );
            soulchat_subjects::trace::record_ids(&span);
            span.in_scope(|| tracing::info!("handled"));
        });
        let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(output.trim()).expect("one JSON line");
        assert_eq!(line["fields"]["message"], "handled");
        let span = &line["spans"][0];
        assert_eq!(span["request_id"], "r-1");
        assert_eq!(span["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["span_id"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn log_formats_are_text_or_json() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().unwrap_err().contains("text or json"));
    }
}
