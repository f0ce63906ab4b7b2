//! Variant (e): a native hyper hello-world server, the ceiling for any Wasm
//! host on the same machine. It runs in its own process (the harness binary
//! started with the hidden `native-hello` subcommand) so that its CPU time is
//! measured like the other servers'.

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;

/// The body it answers with: as long as `hello`'s.
pub const BODY: &[u8] = b"Hello from hyper!\n";
/// What it prints once listening, before `http://ADDR`.
pub const READY_MARKER: &str = "native listening on";

/// Serves `BODY` on `listen` until killed: tokio's multi-threaded runtime
/// (one worker per core), HTTP/1.1 and HTTP/2, like `flint serve`.
pub fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("{READY_MARKER} http://{}", listener.local_addr()?);
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    let response = hyper::Response::builder()
                        .header("content-type", "text/plain")
                        .body(Full::new(Bytes::from_static(BODY)))?;
                    Ok::<_, hyper::http::Error>(response)
                });
                let _ = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
