//! Listing pictures and profile pictures: uploads, deletion, gallery order, and the files of a
//! local object store. Everything an image goes through is in `shared::images`; here a request
//! is read and the rows are shown.

use std::collections::HashMap;

use poem::Request;
use poem_openapi::{
    ApiResponse, Multipart, Object, OpenApi,
    param::{Header, Path},
    payload::{Binary, Json},
    types::multipart::Upload,
};
use shared::{
    db::{self, images::ImageRow},
    domain::ImageStatus as StoredStatus,
    images::{ImageError, ImageStore, Rejected, remove, storage::IMMUTABLE, upload},
};
use uuid::Uuid;

use super::Tag;
use crate::{
    AppState,
    error::{ApiError, ErrorCode},
    security::BearerAuth,
    statuses::ImageStatus,
};

pub struct ImagesApi {
    pub state: AppState,
}

/// One picture. Its files exist once it is `ready`; until then only its owner sees it.
#[derive(Object)]
pub struct Image {
    id: Uuid,
    status: ImageStatus,
    /// The main image of its listing (the first ready one in gallery order).
    is_main: bool,
    /// The display rendition (WebP, longest side `IMAGE_LARGE_PX`); null until ready.
    #[oai(nullable)]
    url: Option<String>,
    /// The thumbnail (WebP, longest side `IMAGE_THUMB_PX`); null until ready.
    #[oai(nullable)]
    pub(crate) thumb_url: Option<String>,
    /// Upright width in pixels; null until ready.
    #[oai(nullable)]
    width: Option<i32>,
    /// Upright height in pixels; null until ready.
    #[oai(nullable)]
    height: Option<i32>,
}

/// A listing's pictures in gallery order (main first).
#[derive(Object)]
struct ImageList {
    images: Vec<Image>,
}

/// Pictures to add to a listing.
#[derive(Multipart)]
#[oai(deny_unknown_fields)]
struct ImageUpload {
    /// JPEG, PNG or WebP files (by their bytes), each at most `IMAGE_MAX_BYTES`.
    files: Vec<Upload>,
}

/// A new profile picture.
#[derive(Multipart)]
#[oai(deny_unknown_fields)]
struct AvatarUpload {
    /// A JPEG, PNG or WebP file, at most `IMAGE_MAX_BYTES`.
    file: Upload,
}

/// A new gallery order.
#[derive(Object)]
struct ImageOrder {
    /// Every image of the listing exactly once; the first becomes the main image.
    #[oai(validator(max_items = 100))]
    image_ids: Vec<Uuid>,
}

/// A profile picture.
#[derive(Object)]
struct Avatar {
    id: Uuid,
    status: ImageStatus,
    /// The thumbnail; null until ready.
    #[oai(nullable)]
    url: Option<String>,
}

#[derive(ApiResponse)]
enum Uploaded {
    /// Stored and queued for processing; the listing's images, the new ones `pending`.
    #[oai(status = 201)]
    Images(Json<ImageList>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[derive(ApiResponse)]
enum File {
    /// The file. Its name is its content's hash: cache it forever.
    #[oai(status = 200, content_type = "image/webp")]
    Found(
        Binary<Vec<u8>>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "ETag")] String,
    ),
    /// The copy the client has is current.
    #[oai(status = 304)]
    NotModified(#[oai(header = "ETag")] String),
}

/// Reads the uploaded files, refusing an oversized one before reading it.
async fn read_files(files: Vec<Upload>, max_bytes: usize) -> Result<Vec<bytes::Bytes>, ApiError> {
    let mut out = Vec::with_capacity(files.len());
    for (index, file) in files.into_iter().enumerate() {
        if file.size() > max_bytes {
            let reason = Rejected::TooLarge { max_bytes };
            return Err(ImageError::Rejected { index, reason }.into());
        }
        let bytes = file.into_vec().await.map_err(|e| ApiError::internal(&e))?;
        out.push(bytes.into());
    }
    Ok(out)
}

/// The views of one listing's `rows` (gallery order), marking the first ready one as main.
async fn views(store: &ImageStore, rows: &[ImageRow]) -> Result<Vec<Image>, ApiError> {
    let main = rows
        .iter()
        .find(|r| r.status == StoredStatus::Ready)
        .map(|r| r.id);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(Image {
            id: row.id,
            status: row.status.into(),
            is_main: Some(row.id) == main,
            url: url_of(store, row.large_key.as_deref()).await?,
            thumb_url: url_of(store, row.thumb_key.as_deref()).await?,
            width: row.width,
            height: row.height,
        });
    }
    Ok(out)
}

/// The URL of the file `key`, if there is one.
pub(crate) async fn url_of(
    store: &ImageStore,
    key: Option<&str>,
) -> Result<Option<String>, ApiError> {
    match key {
        None => Ok(None),
        Some(key) => store
            .url(key)
            .await
            .map(Some)
            .map_err(|e| ImageError::Objects(e).into()),
    }
}

/// URLs by file key.
pub(crate) type Urls = HashMap<String, String>;

/// The URLs of the files `keys`.
pub(crate) async fn urls(store: &ImageStore, keys: &[&str]) -> Result<Urls, ApiError> {
    let mut out = Urls::new();
    for &key in keys {
        if !out.contains_key(key) {
            let url = store.url(key).await.map_err(ImageError::Objects)?;
            out.insert(key.to_owned(), url);
        }
    }
    Ok(out)
}

/// The galleries of `listing_ids` as `viewer` may see them: ready images, and all of the
/// viewer's own.
pub(crate) async fn galleries(
    state: &AppState,
    listing_ids: &[Uuid],
    viewer: Option<Uuid>,
) -> Result<HashMap<Uuid, Vec<Image>>, ApiError> {
    let rows = {
        let mut conn = state.pool.acquire().await?;
        db::images::for_listings(&mut conn, listing_ids, viewer).await?
    };
    let mut by_listing: HashMap<Uuid, Vec<ImageRow>> = HashMap::new();
    for row in rows {
        if let Some(listing) = row.listing_id {
            by_listing.entry(listing).or_default().push(row);
        }
    }
    let mut out = HashMap::with_capacity(by_listing.len());
    for (listing, rows) in by_listing {
        out.insert(listing, views(&state.images, &rows).await?);
    }
    Ok(out)
}

/// The main image of a gallery.
pub(crate) fn main_of(images: &[Image]) -> Option<Image> {
    images.iter().find(|i| i.is_main).map(|i| Image {
        id: i.id,
        status: i.status,
        is_main: true,
        url: i.url.clone(),
        thumb_url: i.thumb_url.clone(),
        width: i.width,
        height: i.height,
    })
}

/// The thumbnail URL of a user's ready avatar.
pub(crate) async fn avatar_url(
    state: &AppState,
    user_id: Uuid,
) -> Result<Option<String>, ApiError> {
    let avatar = {
        let mut conn = state.pool.acquire().await?;
        db::images::avatars(&mut conn, &[user_id]).await?
    };
    url_of(&state.images, avatar.first().map(|(_, key)| key.as_str())).await
}

impl ImagesApi {
    async fn list_for(
        &self,
        listing_id: Uuid,
        viewer: Option<Uuid>,
    ) -> Result<ImageList, ApiError> {
        let mut galleries = galleries(&self.state, &[listing_id], viewer).await?;
        Ok(ImageList {
            images: galleries.remove(&listing_id).unwrap_or_default(),
        })
    }

    /// The listing if `viewer` may see it (404 otherwise), with its seller.
    async fn listing_seller(&self, id: Uuid, viewer: Option<Uuid>) -> Result<Uuid, ApiError> {
        let mut conn = self.state.pool.acquire().await?;
        match db::listings::find(&mut conn, id).await? {
            Some(l) if l.is_active || viewer == Some(l.seller_id) => Ok(l.seller_id),
            _ => Err(ImageError::ListingNotFound.into()),
        }
    }

    /// 404 for a listing the user cannot see, 403 for someone else's: before any file is read.
    async fn owned(&self, id: Uuid, user_id: Uuid) -> Result<(), ApiError> {
        if self.listing_seller(id, Some(user_id)).await? != user_id {
            return Err(ImageError::NotOwner.into());
        }
        Ok(())
    }
}

#[OpenApi(tag = "Tag::Images")]
impl ImagesApi {
    /// Add pictures to a listing (seller only), after its existing ones. Each file is checked
    /// by its bytes (JPEG, PNG or WebP, at most `IMAGE_MAX_BYTES` and `IMAGE_MAX_PIXELS`, fully
    /// decodable) and stored without its metadata; one bad file refuses the whole upload (422
    /// naming the file's index). A listing has at most `IMAGE_MAX_PER_LISTING` images (409).
    /// The new images are `pending` until the worker has made their thumbnails.
    #[oai(
        path = "/api/v1/listings/:id/images",
        method = "post",
        operation_id = "upload_listing_images"
    )]
    async fn upload(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: ImageUpload,
    ) -> Result<Uploaded, ApiError> {
        let user = self.state.user(auth.token()).await?;
        self.owned(id.0, user.id).await?;
        let files = read_files(body.files, self.state.settings.images.max_bytes).await?;
        upload::add_to_listing(&self.state.images(), user.id, id.0, files).await?;
        Ok(Uploaded::Images(Json(
            self.list_for(id.0, Some(user.id)).await?,
        )))
    }

    /// A listing's pictures in gallery order: the ready ones, and for its seller all of them.
    #[oai(
        path = "/api/v1/listings/:id/images",
        method = "get",
        operation_id = "list_listing_images"
    )]
    async fn list(&self, req: &Request, id: Path<Uuid>) -> Result<Json<ImageList>, ApiError> {
        let viewer = self.state.optional_user(req).await?.map(|u| u.id);
        self.listing_seller(id.0, viewer).await?;
        Ok(Json(self.list_for(id.0, viewer).await?))
    }

    /// Set the gallery order (seller only): every image of the listing exactly once, the
    /// main image first.
    #[oai(
        path = "/api/v1/listings/:id/images/order",
        method = "put",
        operation_id = "order_listing_images"
    )]
    async fn order(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: Json<ImageOrder>,
    ) -> Result<Json<ImageList>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        self.owned(id.0, user.id).await?;
        let rows = remove::reorder(&self.state.images(), user.id, id.0, &body.image_ids).await?;
        Ok(Json(ImageList {
            images: views(&self.state.images, &rows).await?,
        }))
    }

    /// Delete one of a listing's pictures with its files (seller only). Orders keep the
    /// thumbnail they were bought with.
    #[oai(
        path = "/api/v1/listings/:id/images/:image_id",
        method = "delete",
        operation_id = "delete_listing_image"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        image_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        self.owned(id.0, user.id).await?;
        remove::delete_listing_image(&self.state.images(), user.id, id.0, image_id.0).await?;
        Ok(NoContent::Done)
    }

    /// Set the signed-in user's profile picture (checked like a listing picture); the previous
    /// one is deleted. `pending` until processed.
    #[oai(
        path = "/api/v1/users/me/avatar",
        method = "put",
        operation_id = "set_avatar"
    )]
    async fn set_avatar(
        &self,
        auth: BearerAuth,
        body: AvatarUpload,
    ) -> Result<Json<Avatar>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let mut files = read_files(vec![body.file], self.state.settings.images.max_bytes).await?;
        let file = files.pop().ok_or(ImageError::NoFiles)?;
        let row = upload::set_avatar(&self.state.images(), user.id, file).await?;
        Ok(Json(Avatar {
            id: row.id,
            status: row.status.into(),
            url: url_of(&self.state.images, row.thumb_key.as_deref()).await?,
        }))
    }

    /// Remove the signed-in user's profile picture.
    #[oai(
        path = "/api/v1/users/me/avatar",
        method = "delete",
        operation_id = "delete_avatar"
    )]
    async fn delete_avatar(&self, auth: BearerAuth) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        remove::remove_avatar(&self.state.images(), user.id).await?;
        Ok(NoContent::Done)
    }

    /// A picture's file, when files are kept in the local object store (with S3 the URLs point
    /// at the bucket). Only renditions are served, never the uploaded original.
    #[oai(
        path = "/api/v1/media/:image_id/:file",
        method = "get",
        operation_id = "get_image_file"
    )]
    async fn file(
        &self,
        image_id: Path<Uuid>,
        file: Path<String>,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<File, ApiError> {
        let store = &self.state.images;
        let missing = || ApiError::not_found(ErrorCode::ImageNotFound);
        let key = shared::images::keys::served(image_id.0, &file.0)
            .filter(|_| store.served_by_api())
            .ok_or_else(missing)?;
        let etag = format!("\"{}\"", file.0);
        if if_none_match.0.as_deref() == Some(etag.as_str()) {
            return Ok(File::NotModified(etag));
        }
        match store.get(&key).await {
            Ok(Some(bytes)) => Ok(File::Found(
                Binary(bytes.to_vec()),
                IMMUTABLE.to_owned(),
                etag,
            )),
            Ok(None) => Err(missing()),
            Err(e) => Err(ImageError::Objects(e).into()),
        }
    }
}
