//! TokenReview and SubjectAccessReview through the API server.

use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::authorization::v1::{
    SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::{Api, PostParams};

use super::{AccessReviewer, ReviewError, TokenReviewer};

/// The reviewers the webhook modes ask; [`Reviews::from_client`] for the API server's.
#[derive(Clone)]
pub struct Reviews {
    pub tokens: Arc<dyn TokenReviewer>,
    pub access: Arc<dyn AccessReviewer>,
}

impl std::fmt::Debug for Reviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reviews")
    }
}

impl Reviews {
    /// Both reviews posted to the API server `client` talks to.
    pub fn from_client(client: kube::Client) -> Reviews {
        let api = Arc::new(ApiReviews { client });
        Reviews {
            tokens: api.clone(),
            access: api,
        }
    }
}

struct ApiReviews {
    client: kube::Client,
}

#[async_trait::async_trait]
impl TokenReviewer for ApiReviews {
    async fn review_token(&self, token: &str) -> Result<TokenReviewStatus, ReviewError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: None,
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError(format!("TokenReview: {e}")))?;
        Ok(reviewed.status.unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl AccessReviewer for ApiReviews {
    async fn review_access(
        &self,
        spec: &SubjectAccessReviewSpec,
    ) -> Result<SubjectAccessReviewStatus, ReviewError> {
        let review = SubjectAccessReview {
            spec: spec.clone(),
            ..Default::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| ReviewError(format!("SubjectAccessReview: {e}")))?;
        Ok(reviewed.status.unwrap_or_default())
    }
}
