//! test-apiserver: serves the in-memory test API server on an address and prints its URL.
//!
//! Usage: test-apiserver [ADDR]   (default 127.0.0.1:8080; port 0 picks a free one)

use std::net::SocketAddr;
use std::process::ExitCode;

use kubelet_test_apiserver::cluster::ClusterOptions;
use kubelet_test_apiserver::csr::{self, CsrSettings};
use kubelet_test_apiserver::server::{
    AppState, DEFAULT_BOOKMARK_INTERVAL, DEFAULT_CSR_SIGNING_DURATION, router, serve,
};
use kubelet_test_apiserver::store::Store;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr: SocketAddr = match arg.parse() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("test-apiserver: {arg:?} is not an address (HOST:PORT): {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("test-apiserver: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(bound) => println!("http://{bound}"),
        Err(e) => {
            eprintln!("test-apiserver: cannot read the bound address: {e}");
            return ExitCode::FAILURE;
        }
    }
    let options = ClusterOptions {
        tls: false,
        allow_anonymous: false,
        csr: CsrSettings {
            auto_approve: false,
            signing_duration: DEFAULT_CSR_SIGNING_DURATION,
        },
    };
    let state = match AppState::new(Store::new(), DEFAULT_BOOKMARK_INTERVAL, &options) {
        Ok(state) => state,
        Err(e) => {
            eprintln!("test-apiserver: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::spawn(csr::run_controllers(state.clone()));
    serve(listener, router(state)).await;
    ExitCode::SUCCESS
}
