//! One connection under its listener's limits: how long it may take to send a
//! request's headers, and how long it may stay open with nothing in flight.
//!
//! Three pieces watch a connection together: [`TrackedIo`] wraps the socket
//! and notices bytes arriving while no request is in flight (a request's
//! headers being sent) and the HTTP/2 preface; [`Tracked`] wraps the service
//! and counts requests from their headers until their response body is done or
//! dropped, so a long gRPC or SSE stream is in flight, never idle; [`drive`]
//! runs the connection and acts when the earliest deadline passes.
//!
//! - HTTP/1: from accept, and from the first byte of each next request, the
//!   headers must be complete within the header-read timeout, else the
//!   connection is dropped. A kept-alive connection with no request in flight
//!   is closed after the idle timeout.
//! - HTTP/2: with no stream in flight for the idle timeout, the connection
//!   gets GOAWAY. (Frames such as PING keep no stream in flight, so a peer
//!   cannot hold an idle connection open by pinging.)
//! - A connection asked to close (idle, or shutdown) that has still not closed
//!   with nothing in flight after another header-read timeout is dropped: a
//!   peer that never acknowledges GOAWAY cannot keep it.
//!
//! hyper's own HTTP/1 `header_read_timeout` is not used: its clock also runs
//! while a kept-alive connection waits for its next request, so it would close
//! every idle HTTP/1 connection after the (short) header timeout.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ListenerLimits;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the connection is doing, shared by its socket, service and driver.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    /// Requests whose response is not finished.
    in_flight: usize,
    /// The peer sent the HTTP/2 preface.
    http2: bool,
    /// Since when nothing has been in flight.
    idle_since: Instant,
    /// HTTP/1: since when the peer has been sending a request's headers (from
    /// accept for the first request).
    awaiting_headers_since: Option<Instant>,
    /// Since when the connection has been asked to close.
    closing_since: Option<Instant>,
}

/// Why a connection's deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// A request's headers took too long: drop the connection.
    HeaderRead,
    /// Nothing in flight for the idle timeout: close it gracefully.
    Idle,
    /// Asked to close and still open with nothing in flight: drop it.
    Abandoned,
}

impl Activity {
    /// A connection accepted now, waiting for its first request.
    pub(crate) fn new() -> Arc<Activity> {
        let now = Instant::now();
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                http2: false,
                idle_since: now,
                awaiting_headers_since: Some(now),
                closing_since: None,
            }),
            changed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, change: impl FnOnce(&mut State) -> bool) {
        if change(&mut self.state()) {
            // One waiter (the driver); a stored permit covers a change made
            // while it was not waiting.
            self.changed.notify_one();
        }
    }

    /// A request's headers arrived: it is in flight until the guard drops.
    fn request_started(self: &Arc<Self>) -> InFlight {
        // Only moves the deadline away: the driver re-reads it when it passes.
        self.update(|state| {
            state.in_flight += 1;
            state.awaiting_headers_since = None;
            false
        });
        InFlight(Arc::clone(self))
    }

    /// Bytes arrived on an HTTP/1 connection.
    fn bytes_arrived(&self) {
        self.update(|state| {
            let starts_headers =
                state.in_flight == 0 && !state.http2 && state.awaiting_headers_since.is_none();
            if starts_headers {
                state.awaiting_headers_since = Some(Instant::now());
            }
            starts_headers
        });
    }

    /// The peer speaks HTTP/2: only the idle timeout applies.
    fn http2_detected(&self) {
        self.update(|state| {
            state.http2 = true;
            state.awaiting_headers_since = None;
            false
        });
    }

    /// Called by the driver itself, which then reads the new deadline.
    fn closing(&self) {
        self.update(|state| {
            state.closing_since.get_or_insert_with(Instant::now);
            false
        });
    }

    /// The next deadline and what happens when it passes; none while a request
    /// is in flight or when the timeouts are off.
    pub(crate) fn next_deadline(&self, limits: &ListenerLimits) -> Option<(Instant, Expiry)> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        if let Some(closing_since) = state.closing_since {
            let grace = limits.header_read_timeout.unwrap_or(ABANDON_GRACE);
            return Some((
                closing_since.max(state.idle_since) + grace,
                Expiry::Abandoned,
            ));
        }
        if let (Some(since), Some(timeout)) =
            (state.awaiting_headers_since, limits.header_read_timeout)
        {
            return Some((since + timeout, Expiry::HeaderRead));
        }
        limits
            .idle_timeout
            .map(|timeout| (state.idle_since + timeout, Expiry::Idle))
    }
}

/// How long a connection asked to close may stay open with nothing in flight
/// when no header-read timeout is configured.
const ABANDON_GRACE: Duration = Duration::from_secs(10);

/// A request in flight; dropped when its response body is finished or dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|state| {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                state.idle_since = Instant::now();
            }
            state.in_flight == 0
        });
    }
}

/// A socket that reports arriving bytes to the connection's [`Activity`].
#[derive(Debug)]
pub(crate) struct TrackedIo<S> {
    inner: S,
    activity: Arc<Activity>,
    /// How many bytes of the HTTP/2 preface matched so far; `None` once the
    /// protocol is known.
    preface_matched: Option<usize>,
    http2: bool,
}

impl<S> TrackedIo<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        TrackedIo {
            inner,
            activity,
            preface_matched: Some(0),
            http2: false,
        }
    }

    fn observe(&mut self, bytes: &[u8]) {
        if let Some(matched) = self.preface_matched {
            let expected = &HTTP2_PREFACE[matched..];
            let compared = bytes.len().min(expected.len());
            self.preface_matched = if bytes[..compared] != expected[..compared] {
                None
            } else if matched + compared == HTTP2_PREFACE.len() {
                self.http2 = true;
                self.activity.http2_detected();
                None
            } else {
                Some(matched + compared)
            };
        }
        if !self.http2 {
            self.activity.bytes_arrived();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.observe(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A service that counts its requests in flight on the connection's [`Activity`].
#[derive(Debug, Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S, R, B> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R, Response = http::Response<B>, Error = Infallible>,
{
    type Response = http::Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        TrackedFuture {
            in_flight: Some(self.activity.request_started()),
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// A response being computed; its request stays in flight into the body.
    #[derive(Debug)]
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, Infallible>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take();
        Poll::Ready(result.map(|response| {
            response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            })
        }))
    }
}

pin_project! {
    /// A response body whose request is in flight until it is done or dropped.
    #[derive(Debug)]
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _in_flight: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How a connection ended, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It finished by itself (peer closed, or it closed gracefully).
    Finished,
    /// The header-read timeout (or a stalled TLS handshake) dropped it.
    HeaderTimeout,
    /// It was idle and closed, gracefully or, after the grace, by dropping it.
    Idle,
}

/// Runs `connection` until it ends, closing it gracefully on `shutdown` and
/// when idle, and dropping it when its headers or its close take too long.
pub(crate) async fn drive<C>(
    connection: C,
    activity: &Activity,
    limits: &ListenerLimits,
    shutdown: &CancellationToken,
) -> Ending
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    let mut idle_closed = false;
    let mut shutting_down = false;
    loop {
        // Read afresh on every turn: a request may have started since the
        // last deadline was set.
        let deadline = activity.next_deadline(limits);
        if let Some((at, expiry)) = deadline
            && at <= Instant::now()
        {
            match expiry {
                Expiry::HeaderRead => return Ending::HeaderTimeout,
                Expiry::Abandoned if idle_closed => return Ending::Idle,
                Expiry::Abandoned => return Ending::Finished,
                Expiry::Idle => {
                    idle_closed = true;
                    activity.closing();
                    connection.as_mut().graceful_shutdown();
                    continue;
                }
            }
        }
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return if idle_closed { Ending::Idle } else { Ending::Finished };
            }
            () = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                activity.closing();
                connection.as_mut().graceful_shutdown();
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline), if deadline.is_some() => {}
        }
    }
}

async fn sleep_until(deadline: Option<(Instant, Expiry)>) {
    if let Some((at, _)) = deadline {
        tokio::time::sleep_until(at).await;
    }
}
