//! Attachments: `/api/attachments*`. The bytes live in the `soulchat_attachments` object store
//! and stream through: an upload goes chunk by chunk into the store as it arrives (never whole in
//! memory, cut off past the size limit), a download from the store to the client. Who may read
//! one is the uploader (the object's metadata says) or, as the chat worker answers, a member of a
//! conversation where it was sent; anyone else gets the same 404 as for no attachment at all.
//! Deleting them is the chat worker's (`services/chat/src/attachments.rs`).

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::object_store::{InfoErrorKind, ObjectInfo, ObjectMetadata};
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use soulchat_subjects::chat::{self, messages as cm};
use soulchat_subjects::streams::{ATTACHMENT_NAME, ATTACHMENT_TYPE, ATTACHMENT_UPLOADER};
use soulchat_subjects::{ErrorCode, ServiceError};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::io::{ReaderStream, StreamReader};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult};
use crate::extract::{DEFAULT_BODY_TIMEOUT, Meta, Paging, Path};
use crate::server::BodyTimeout;
use crate::state::AppState;
use crate::views::chat::{AttachmentEnvelope, AttachmentView};

/// The default of `SOULCHAT_ATTACHMENT_MAX_BYTES`.
pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;
/// What the type is sniffed from: every signature `infer` knows fits.
const SNIFF_BYTES: u64 = 8192;
const NAME_MAX: usize = 255;

fn not_found() -> ApiError {
    ServiceError::not_found("attachment").into()
}

fn too_large(max: u64) -> ApiError {
    ServiceError::too_large("body", usize::try_from(max).unwrap_or(usize::MAX)).into()
}

/// Stores the request body as a new attachment of the caller's.
#[utoipa::path(post, path = "/attachments", tag = "attachments", security(("token" = [])),
    params(("name" = String, Query, description = "The file name (1-255 characters, no path).")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes, with their `Content-Type` (a declared `image/*` must be one)."),
    responses(
        (status = 201, description = "Stored; send it in an image or file message as `attachment_id`. Deleted if not sent within a day.", body = AttachmentEnvelope),
        (status = 408, description = "The bytes stopped arriving for `SOULCHAT_HTTP_BODY_TIMEOUT`."),
        (status = 413, description = "Over `SOULCHAT_ATTACHMENT_MAX_BYTES` (25 MiB by default)."),
        (status = 422, description = "No usable `name`, or a declared image that is not one."),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    paging: Paging,
    timeout: Option<Extension<BodyTimeout>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<AttachmentEnvelope>)> {
    let name = file_name(paging.param("name"))?;
    let max = state.attachment_max_bytes;
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let declared = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| is_media_type(v))
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let gap = timeout.map_or(DEFAULT_BODY_TIMEOUT, |Extension(BodyTimeout(t))| t);
    let mut body = Capped {
        inner: StreamReader::new(body.into_data_stream().map_err(std::io::Error::other)),
        left: max,
        over: false,
        gap,
        stall: Box::pin(tokio::time::sleep(gap)),
        stalled: false,
    };
    let mut head = Vec::new();
    (&mut body).take(SNIFF_BYTES).read_to_end(&mut head).await.map_err(|e| read_failed(&body, max, e))?;
    let sniffed = infer::get(&head);
    if declared.starts_with("image/") && !sniffed.is_some_and(|t| t.matcher_type() == infer::MatcherType::Image) {
        return Err(ServiceError::invalid("content_type", "is not what the bytes are (not an image)").into());
    }
    let content_type = sniffed.map_or(declared, |t| t.mime_type().to_owned());
    let id = uuid::Uuid::new_v4().to_string();
    let meta = ObjectMetadata {
        name: id.clone(),
        metadata: HashMap::from([
            (ATTACHMENT_UPLOADER.to_owned(), auth.id().to_owned()),
            (ATTACHMENT_NAME.to_owned(), name.clone()),
            (ATTACHMENT_TYPE.to_owned(), content_type.clone()),
        ]),
        ..Default::default()
    };
    let mut bytes = std::io::Cursor::new(head).chain(body);
    let stored = state.attachments.put(meta, &mut bytes).await;
    let (_, body) = bytes.into_inner();
    let info = match stored {
        Ok(info) => info,
        Err(_) if body.over => return Err(too_large(max)),
        Err(_) if body.stalled => return Err(timed_out()),
        Err(e) => {
            tracing::warn!("storing an attachment: {e}");
            return Err(ServiceError::unavailable().into());
        }
    };
    let attachment = AttachmentView { id, name, size: info.size as u64, content_type };
    Ok((StatusCode::CREATED, Json(AttachmentEnvelope { attachment })))
}

/// A body that stopped early, or went past the limit.
fn read_failed<R>(body: &Capped<R>, max: u64, e: std::io::Error) -> ApiError {
    if body.over {
        too_large(max)
    } else if body.stalled {
        timed_out()
    } else {
        ServiceError::bad_request("body", &format!("could not be read ({e})")).into()
    }
}

/// As for any body that stops arriving (`SOULCHAT_HTTP_BODY_TIMEOUT`).
fn timed_out() -> ApiError {
    ServiceError::new(ErrorCode::RequestTimeout, "body", "did not arrive in time").into()
}

/// `type/subtype` of RFC 6838's characters: what is served back as `Content-Type` must be one.
fn is_media_type(value: &str) -> bool {
    let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    value.split_once('/').is_some_and(|(kind, sub)| token(kind) && token(sub))
}

/// A file name as given, without any path: what `Content-Disposition` names on the way out.
fn file_name(name: Option<String>) -> Result<String, ServiceError> {
    let name = name.unwrap_or_default();
    let name = name.trim();
    if name.is_empty() {
        Err(ServiceError::invalid("name", "can't be blank"))
    } else if name.chars().count() > NAME_MAX {
        Err(ServiceError::invalid("name", &format!("is too long (maximum is {NAME_MAX} characters)")))
    } else if name.contains(|c: char| c.is_control() || c == '/' || c == '\\') || name == "." || name == ".." {
        Err(ServiceError::invalid("name", "is invalid (a file name, without a path)"))
    } else {
        Ok(name.to_owned())
    }
}

/// Reads at most `left` bytes from `inner`; one more is an error, with `over` set. Bytes that
/// stop arriving for `gap` are an error too, with `stalled` set: an upload may take long, but a
/// client that sends nothing must not hold the connection and the store's chunks.
struct Capped<R> {
    inner: R,
    left: u64,
    over: bool,
    gap: Duration,
    stall: Pin<Box<Sleep>>,
    stalled: bool,
}

impl<R: AsyncRead + Unpin> AsyncRead for Capped<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let Poll::Ready(read) = Pin::new(&mut self.inner).poll_read(cx, buf) else {
            if self.stall.as_mut().poll(cx).is_ready() {
                self.stalled = true;
                return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
            }
            return Poll::Pending;
        };
        read?;
        let next = Instant::now() + self.gap;
        self.stall.as_mut().reset(next);
        let read = (buf.filled().len() - before) as u64;
        if read > self.left {
            self.over = true;
            return Poll::Ready(Err(std::io::Error::other("over the size limit")));
        }
        self.left -= read;
        Poll::Ready(Ok(()))
    }
}

/// The attachment's bytes, or the part a `Range: bytes=a-b` asks for.
#[utoipa::path(get, path = "/attachments/{id}", tag = "attachments", security(("token" = [])),
    params(("id" = String, Path, description = "The attachment.")),
    responses(
        (status = 200, description = "The bytes, with the sniffed `Content-Type` and `Content-Disposition: attachment`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for, with `Content-Range`.", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "No such attachment, or the caller neither uploaded it nor is in a conversation where it was sent."),
        (status = 416, description = "A range that is not one range within the attachment."),
    ))]
pub async fn download(
    State(state): State<AppState>,
    auth: AuthUser,
    Meta(ctx): Meta,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let info = match state.attachments.info(&id).await {
        Ok(info) if !info.deleted => info,
        Ok(_) => return Err(not_found()),
        Err(e) if matches!(e.kind(), InfoErrorKind::NotFound | InfoErrorKind::InvalidName) => return Err(not_found()),
        Err(e) => {
            tracing::warn!("reading an attachment's info: {e}");
            return Err(ServiceError::unavailable().into());
        }
    };
    if info.metadata.get(ATTACHMENT_UPLOADER).is_none_or(|u| u != auth.id()) {
        let ctx = ctx.with_user(auth.id());
        state
            .caller
            .call::<chat::AttachmentAccess>(&ctx, &cm::AttachmentAccessRequest { attachment_id: id.clone() })
            .await?;
    }
    let size = info.size as u64;
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => match value.to_str().ok().and_then(|v| byte_range(v, size)) {
            Some(range) => Some(range),
            None => return Ok(unsatisfiable(size)),
        },
    };
    let mut object = state.attachments.get(&id).await.map_err(|e| {
        tracing::warn!("reading an attachment: {e}");
        not_found()
    })?;
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    // The store has no seek: a range skips the bytes before it as they arrive.
    if start > 0 {
        tokio::io::copy(&mut (&mut object).take(start), &mut tokio::io::sink()).await.map_err(|e| {
            tracing::warn!("skipping to a range of an attachment: {e}");
            ApiError(ServiceError::unavailable())
        })?;
    }
    let body = Body::from_stream(ReaderStream::new(object.take(length)));
    let mut response = body.into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, content_type(&info));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    out.insert(
        header::CONTENT_DISPOSITION,
        disposition(info.metadata.get(ATTACHMENT_NAME).map_or("attachment", String::as_str)),
    );
    if let Some((start, end)) = range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")).expect("digits are a header value");
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

fn content_type(info: &ObjectInfo) -> HeaderValue {
    info.metadata
        .get(ATTACHMENT_TYPE)
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// 416 with the size, as RFC 9110 asks.
fn unsatisfiable(size: u64) -> Response {
    let e = ServiceError::new(
        ErrorCode::RangeNotSatisfiable,
        "range",
        &format!("is not one range of bytes within 0-{size}"),
    );
    let mut response = ApiError(e).into_response();
    let value = HeaderValue::from_str(&format!("bytes */{size}")).expect("digits are a header value");
    response.headers_mut().insert(header::CONTENT_RANGE, value);
    response
}

/// One range of `bytes=a-b`, `bytes=a-` or `bytes=-n` within `size` bytes, inclusive; `None`
/// for anything else (several ranges are not served).
fn byte_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let (first, last) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let suffix: u64 = last.parse().ok().filter(|&n| n > 0)?;
        (size.saturating_sub(suffix), size.checked_sub(1)?)
    } else {
        let start: u64 = first.parse().ok()?;
        let end =
            if last.is_empty() { size.checked_sub(1)? } else { last.parse::<u64>().ok()?.min(size.checked_sub(1)?) };
        (start, end)
    };
    (start <= end && end < size).then_some((start, end))
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>` (RFC 6266):
/// the exact name for clients that read `filename*`, a safe one for the others.
fn disposition(name: &str) -> HeaderValue {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    HeaderValue::from_str(&format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"))
        .unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_one_range_within_the_size() {
        assert_eq!(byte_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(byte_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(byte_range("bytes=50-1000", 100), Some((50, 99)));
        for bad in ["bytes=100-", "bytes=5-4", "bytes=0-1,3-4", "items=0-1", "bytes=-0", "bytes=x-1"] {
            assert_eq!(byte_range(bad, 100), None, "{bad}");
        }
        assert_eq!(byte_range("bytes=0-", 0), None);
    }

    #[test]
    fn dispositions_keep_the_name_and_stay_a_header() {
        assert_eq!(disposition("a b.txt"), "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt");
        assert_eq!(
            disposition("é\"x\r\n.png"),
            "attachment; filename=\"__x__.png\"; filename*=UTF-8''%C3%A9%22x%0D%0A.png"
        );
    }

    #[test]
    fn media_types_are_type_and_subtype() {
        assert!(is_media_type("image/svg+xml") && is_media_type("application/vnd.ms-excel"));
        assert!(
            !is_media_type("text") && !is_media_type("text/") && !is_media_type("a/b c") && !is_media_type("a/b/c")
        );
    }

    #[test]
    fn file_names_have_no_path() {
        assert_eq!(file_name(Some(" report.pdf ".into())).unwrap(), "report.pdf");
        for bad in [None, Some(String::new()), Some("../x".into()), Some("a\\b".into()), Some("x".repeat(256))] {
            assert!(file_name(bad).is_err());
        }
    }
}
