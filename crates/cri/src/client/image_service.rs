//! [`ImageService`] over any [`Transport`].

use super::CriClient;
use super::call::{invalid_reply, with_deadline};
use crate::api::{
    AuthConfig, FilesystemUsage, Image, ImageFsInfoRequest, ImageSpec, ImageStatusRequest,
    ListImagesRequest, PodSandboxConfig, PullImageRequest, RemoveImageRequest,
};
use crate::transport::Transport;
use crate::{ImageService, Result};

#[async_trait::async_trait]
impl<T: Transport> ImageService for CriClient<T> {
    async fn image_status(&self, image: &ImageSpec) -> Result<Option<Image>> {
        let request = ImageStatusRequest {
            image: Some(image.clone()),
            verbose: false,
        };
        let reply = with_deadline(
            "ImageStatus",
            Some(self.request_timeout),
            self.transport.image_status(request),
        )
        .await?;
        match reply.image {
            Some(found) if found.id.is_empty() => {
                Err(invalid_reply("ImageStatus", "image without an id"))
            }
            found => Ok(found),
        }
    }

    async fn pull_image(
        &self,
        image: &ImageSpec,
        auth: Option<AuthConfig>,
        sandbox_config: Option<PodSandboxConfig>,
    ) -> Result<String> {
        let request = PullImageRequest {
            image: Some(image.clone()),
            auth,
            sandbox_config,
        };
        // No deadline: a large image on a slow registry legitimately takes minutes.
        let reply = with_deadline("PullImage", None, self.transport.pull_image(request)).await?;
        if reply.image_ref.is_empty() {
            return Err(invalid_reply("PullImage", "empty image reference"));
        }
        Ok(reply.image_ref)
    }

    async fn list_images(&self) -> Result<Vec<Image>> {
        let request = ListImagesRequest { filter: None };
        let reply = with_deadline(
            "ListImages",
            Some(self.request_timeout),
            self.transport.list_images(request),
        )
        .await?;
        Ok(reply.images)
    }

    async fn remove_image(&self, image: &ImageSpec) -> Result<()> {
        let request = RemoveImageRequest {
            image: Some(image.clone()),
        };
        with_deadline(
            "RemoveImage",
            Some(self.request_timeout),
            self.transport.remove_image(request),
        )
        .await
        .map(drop)
    }

    async fn image_fs_info(&self) -> Result<Vec<FilesystemUsage>> {
        let reply = with_deadline(
            "ImageFsInfo",
            Some(self.request_timeout),
            self.transport.image_fs_info(ImageFsInfoRequest {}),
        )
        .await?;
        Ok(reply.image_filesystems)
    }
}
