//! `list_registry_images`: the images in an OCI/Docker registry (`REGISTRY_URL`), by the
//! distribution API: `/v2/_catalog` (followed across pages, which the original did not)
//! then `/v2/<repo>/tags/list` for each repository, a few at a time. Repositories that
//! fail are reported, not silently dropped. The output is bounded (`limit`).

use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::context::Context;
use crate::outcome::{Outcome, ToolError};

const DEFAULT_LIMIT: u32 = 500;
/// Catalog pages followed at most (1,000 repositories each).
const MAX_PAGES: usize = 20;
const PAGE_SIZE: u32 = 1000;
/// Tag lists fetched at once.
const CONCURRENCY: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Catalog {
    #[serde(default)]
    repositories: Vec<String>,
}

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn upstream_error(message: String) -> ToolError {
    ToolError { code: 502, message }
}

/// The `next` page path from a `Link: </v2/_catalog?last=x&n=100>; rel="next"` header.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let link = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// Images whose repository starts with `prefix`, at most `limit` (default 500).
pub async fn list_images(
    ctx: &Context,
    prefix: Option<&str>,
    limit: Option<u32>,
) -> Result<Outcome, ToolError> {
    if limit == Some(0) {
        return Err(ToolError::bad_input("limit must be at least 1"));
    }
    let Some(base) = ctx.registry_url.as_deref().map(|u| u.trim_end_matches('/')) else {
        return Ok(Outcome {
            text: "No registry configured. Set REGISTRY_URL env var (e.g. http://nogoo9-registry.localhost:5001).".into(),
            structured: json!({"images": [], "registry": ""}),
        });
    };
    let host = base.split_once("://").map_or(base, |(_, h)| h);
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| upstream_error(format!("cannot build an HTTP client: {e}")))?;

    let mut repositories = Vec::new();
    let mut next = Some(format!("/v2/_catalog?n={PAGE_SIZE}"));
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        let url = format!("{base}{path}");
        let resp = client
            .get(&url)
            .send()
            .await
            .map_err(|e| upstream_error(format!("registry catalog {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(upstream_error(format!(
                "Registry catalog returned {}",
                resp.status()
            )));
        }
        let link = next_link(resp.headers());
        let page: Catalog = resp
            .json()
            .await
            .map_err(|e| upstream_error(format!("registry catalog is not valid JSON: {e}")))?;
        repositories.extend(page.repositories);
        if pages < MAX_PAGES {
            next = link;
        }
    }
    if let Some(prefix) = prefix {
        repositories.retain(|r| r.starts_with(prefix));
    }

    let fetched: Vec<(String, Result<Vec<String>, String>)> = futures::stream::iter(repositories)
        .map(|repo| {
            let client = client.clone();
            let url = format!("{base}/v2/{repo}/tags/list");
            async move {
                let tags = async {
                    let resp = client.get(&url).send().await.map_err(|e| e.to_string())?;
                    if !resp.status().is_success() {
                        return Err(format!("HTTP {}", resp.status()));
                    }
                    let t: Tags = resp.json().await.map_err(|e| e.to_string())?;
                    Ok(t.tags.unwrap_or_default())
                }
                .await;
                (repo, tags)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut images = Vec::new();
    let mut failed = Vec::new();
    for (repo, tags) in fetched {
        match tags {
            Ok(tags) => images.extend(tags.into_iter().map(|t| format!("{host}/{repo}:{t}"))),
            Err(e) => failed.push(json!({"repository": repo, "error": e})),
        }
    }
    images.sort();
    let limit = limit.unwrap_or(DEFAULT_LIMIT) as usize;
    let truncated = images.len() > limit;
    images.truncate(limit);
    let mut text = if images.is_empty() {
        format!("(no images found in {host})")
    } else {
        images.join("\n")
    };
    if truncated {
        text.push_str("\n(more images exist: raise `limit` or filter by `repository`)");
    }
    for f in &failed {
        text.push_str(&format!(
            "\n(could not list tags of {}: {})",
            f["repository"].as_str().unwrap_or_default(),
            f["error"].as_str().unwrap_or_default()
        ));
    }
    Ok(Outcome {
        text,
        structured: json!({"images": images, "registry": host, "truncated": truncated, "failed": failed}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::LINK,
            "</v2/_catalog?last=b&n=2>; rel=\"next\""
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/_catalog?last=b&n=2"));
        assert_eq!(next_link(&reqwest::header::HeaderMap::new()), None);
    }
}
