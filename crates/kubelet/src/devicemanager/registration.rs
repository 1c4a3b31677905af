//! The v1beta1 Registration service on device-plugins/kubelet.sock, where most device plugins
//! register.

use super::{DeviceManager, DeviceManagerError, KUBELET_SOCKET};
use kubelet_plugin_apis::deviceplugin::v1beta1::registration_server::{
    Registration, RegistrationServer,
};
use kubelet_plugin_apis::deviceplugin::v1beta1::{Empty, RegisterRequest};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

struct Service(DeviceManager);

#[tonic::async_trait]
impl Registration for Service {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        let r = request.into_inner();
        tracing::info!(resource = %r.resource_name, endpoint = %r.endpoint, "device plugin registration");
        DeviceManager::validate(&r.resource_name, std::slice::from_ref(&r.version))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let socket = self.0.dir().join(&r.endpoint);
        let manager = self.0.clone();
        // As upstream, the plugin is dialled after the answer: it may only start serving once
        // registered.
        tokio::spawn(async move {
            if let Err(e) = manager
                .register_plugin(&r.resource_name, &socket, r.options)
                .await
            {
                tracing::error!("{e}");
            }
        });
        Ok(Response::new(Empty {}))
    }
}

/// Binds the registration socket (replacing a stale one) and serves it in the background.
pub async fn serve(manager: DeviceManager) -> Result<(), DeviceManagerError> {
    let path = manager.dir().join(KUBELET_SOCKET);
    let serve_error = |source| DeviceManagerError::Serve {
        path: path.clone(),
        source,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(serve_error(e)),
    }
    let listener = UnixListener::bind(&path).map_err(serve_error)?;
    let server = tonic::transport::Server::builder()
        .add_service(RegistrationServer::new(Service(manager)))
        .serve_with_incoming(UnixListenerStream::new(listener));
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("device plugin registration server stopped: {e}");
        }
    });
    Ok(())
}
