//! Who may use the kubelet API: authentication (client certificate, bearer token, anonymous),
//! then authorization (AlwaysAllow, or a SubjectAccessReview per request), as upstream's
//! InstallAuthFilter does before any handler runs.

mod authn;
mod authz;
mod cache;
mod reviews;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub(crate) use authn::user_of_certificate;
pub use authn::{TokenReviewer, User};
pub use authz::AccessReviewer;
pub use reviews::Reviews;

use crate::{AuthorizationMode, ServerConfig, ServerError};
use authn::{Authenticator, TokenAuthenticator};
use authz::{Authorizer, Decision, WebhookAuthorizer};

/// Why the API server could not answer a review.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReviewError(pub String);

/// The authenticated user of the connection, set by the listener when a certificate was given.
#[derive(Debug, Clone)]
pub(crate) struct Peer(pub Option<User>);

pub(crate) struct Auth {
    node_name: String,
    authenticator: Authenticator,
    authorizer: Authorizer,
}

impl Auth {
    pub(crate) fn new(cfg: &ServerConfig, node_name: String) -> Result<Auth, ServerError> {
        let tokens = if cfg.authentication_webhook {
            let reviews = cfg
                .reviews
                .as_ref()
                .ok_or(ServerError::NoApiClient("authentication"))?;
            Some(TokenAuthenticator::new(
                reviews.tokens.clone(),
                cfg.authentication_webhook_cache_ttl,
            ))
        } else {
            None
        };
        let authorizer = match cfg.authorization_mode {
            AuthorizationMode::AlwaysAllow => Authorizer::AlwaysAllow,
            AuthorizationMode::Webhook => {
                let reviews = cfg
                    .reviews
                    .as_ref()
                    .ok_or(ServerError::NoApiClient("authorization"))?;
                Authorizer::Webhook(Box::new(WebhookAuthorizer {
                    reviewer: reviews.access.clone(),
                    allowed_ttl: cfg.authorization_webhook_cache_authorized_ttl,
                    denied_ttl: cfg.authorization_webhook_cache_unauthorized_ttl,
                    cache: cache::TtlCache::new(),
                }))
            }
        };
        Ok(Auth {
            node_name,
            authenticator: Authenticator {
                anonymous: cfg.anonymous_auth,
                tokens,
            },
            authorizer,
        })
    }
}

/// Authenticates and authorizes each request, and makes the user available to handlers.
pub(crate) async fn filter(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let certificate_user = request.extensions().get::<Peer>().and_then(|p| p.0.clone());
    let user = match auth
        .authenticator
        .authenticate(certificate_user, request.headers_mut())
        .await
    {
        Ok(user) => user,
        Err(reason) => {
            tracing::debug!(path = %request.uri().path(), %reason, "unauthorized kubelet API request");
            return (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
        }
    };
    let decision = auth
        .authorizer
        .authorize(
            &user,
            request.method(),
            request.uri().path(),
            &auth.node_name,
        )
        .await;
    match decision {
        Decision::Allow => {}
        Decision::Forbidden(message) => return (StatusCode::FORBIDDEN, message).into_response(),
        Decision::Error(message) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
        }
    }
    tracing::debug!(user = %user.name, path = %request.uri().path(), "kubelet API request");
    request.extensions_mut().insert(user);
    next.run(request).await
}
