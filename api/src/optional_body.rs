//! An optional JSON request body: absent (no body and no `Content-Type`) or a JSON document.
//!
//! poem-openapi's `Json<T>` insists on a `Content-Type`, so an operation whose body may be left
//! out (`POST /orders/{id}/refund` with no body means "every line") needs this extractor. The
//! OpenAPI document shows the body as optional.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    error::ContentTypeError,
    payload::{Json, Payload},
    registry::{MetaRequest, Registry},
    types::ParseFromJSON,
};

/// `None` when the request has no body; otherwise the parsed JSON.
pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<T> as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        let mut meta = <Json<T> as ApiExtractor<'a>>::request_meta()?;
        meta.required = false;
        Some(meta)
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if request.content_type().is_some() {
            let Json(value) =
                <Json<T> as ApiExtractor<'a>>::from_request(request, body, param_opts).await?;
            return Ok(Self(Some(value)));
        }
        let bytes = body.take()?.into_bytes().await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            Ok(Self(None))
        } else {
            // A body without a content type: refuse it like any other operation would.
            Err(ContentTypeError::ExpectContentType.into())
        }
    }
}
