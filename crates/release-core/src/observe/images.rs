//! Images as the engine sees them: which is a complete bake of a commit.

use crate::model::ids::{BakeKey, CommitSha};
use crate::ports::{tags, Image};

/// The newest complete bake of `commit`.
pub fn find_ami(images: &[Image], commit: &CommitSha) -> Option<Image> {
    images
        .iter()
        .filter(|i| i.is_complete_bake() && i.tags.get(tags::COMMIT).map(String::as_str) == Some(commit.as_str()))
        .max_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)))
        .cloned()
}

/// The newest complete bake of `app` with this key.
pub fn find_complete(images: &[Image], key: &BakeKey) -> Option<Image> {
    images
        .iter()
        .filter(|i| i.is_complete_bake() && i.tags.get(tags::BAKE_KEY).map(String::as_str) == Some(key.as_str()))
        .max_by(|a, b| a.created.cmp(&b.created))
        .cloned()
}
