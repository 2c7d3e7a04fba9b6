//! Newtypes for every identifier that crosses a port, so an AMI id can never be passed where a commit is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::error::{Error, Input};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A full 40-character lowercase git commit id.
    CommitSha
);
id_type!(
    /// `ami-` followed by hex.
    AmiId
);
id_type!(
    /// `i-` followed by hex.
    InstanceId
);
id_type!(
    /// `[a-z0-9-]`, 1–32 characters: it is part of AMI names and tags.
    AppName
);
id_type!(
    /// An environment name from the pipeline file (`staging`, `prod`).
    EnvName
);
id_type!(
    /// A cluster name, unique within an app (`prod1`).
    ClusterName
);
id_type!(
    /// Identifies one promote/switch/rollback in tags and the ledger.
    ReleaseId
);
id_type!(
    /// Hex sha256 of everything that decides an image (DESIGN §4).
    BakeKey
);

/// The first `n` characters of an identifier, never panicking on short or non-ASCII text.
pub fn short(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The first 12 characters of a commit sha as shown to people; any text is accepted.
pub fn short_sha(s: &str) -> &str {
    short(s, 12)
}

fn is_lower_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Names used in AMI names, tags and DynamoDB keys: `[a-z0-9-]`, not starting or ending with `-`.
pub(crate) fn is_slug(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl CommitSha {
    /// A full 40-character lowercase sha, or an input error.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() == 40 && is_lower_hex(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Input::CommitSha { given: s.to_owned() }.into())
        }
    }

    /// The first 12 characters, as used in AMI names.
    pub fn short(&self) -> &str {
        short(&self.0, 12)
    }
}

impl AmiId {
    /// `ami-` followed by hex, or an input error.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.strip_prefix("ami-") {
            Some(rest) if is_lower_hex(rest) => Ok(Self(s.to_owned())),
            _ => Err(Input::AmiId { given: s.to_owned() }.into()),
        }
    }
}

impl InstanceId {
    /// `i-` followed by hex, or an input error.
    pub fn parse(s: &str) -> Result<Self, Error> {
        match s.strip_prefix("i-") {
            Some(rest) if is_lower_hex(rest) => Ok(Self(s.to_owned())),
            _ => Err(Input::InstanceId { given: s.to_owned() }.into()),
        }
    }
}

impl AppName {
    /// Longest allowed name.
    pub const MAX_LEN: usize = 32;

    /// A slug of at most 32 characters, or an input error.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if is_slug(s, Self::MAX_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Input::Name { what: "app", given: s.to_owned() }.into())
        }
    }
}

macro_rules! slug_name {
    ($name:ident, $what:literal) => {
        impl $name {
            /// Longest allowed name.
            pub const MAX_LEN: usize = 32;

            /// A slug of at most 32 characters, or an input error.
            pub fn parse(s: &str) -> Result<Self, Error> {
                if is_slug(s, Self::MAX_LEN) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(Input::Name { what: $what, given: s.to_owned() }.into())
                }
            }
        }
    };
}
slug_name!(EnvName, "environment");
slug_name!(ClusterName, "cluster");

impl EnvName {
    /// The name of the lock of one commit's bakes, `bake#<sha>`: not a slug, so no environment can have it (and
    /// what reads environments, `history` and `status`, never meets it).
    pub fn for_bakes_of(commit: &CommitSha) -> Self {
        Self(format!("bake#{commit}"))
    }
}

impl ReleaseId {
    /// Release ids sort by time: `r` + UTC timestamp + random suffix, e.g. `r20261122T034950Z-3f9a1c`.
    pub fn new(now: crate::model::clock::Timestamp, entropy: u32) -> Self {
        Self(format!("r{}-{:06x}", now.compact(), entropy & 0xff_ffff))
    }

    /// A release id as stored (tags, ledger); not validated, since older ids may have other shapes.
    pub fn from_string(s: String) -> Self {
        Self(s)
    }
}

impl BakeKey {
    /// Wraps a hex digest.
    pub fn from_digest(hex: String) -> Self {
        Self(hex)
    }

    /// The first 8 characters, as used in AMI names.
    pub fn short(&self) -> &str {
        short(&self.0, 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_sha_wants_forty_lower_hex() {
        assert!(CommitSha::parse(&"a".repeat(40)).is_ok());
        assert!(CommitSha::parse(&"A".repeat(40)).is_err());
        assert!(CommitSha::parse("abc123").is_err());
        assert_eq!(CommitSha::parse(&"0123456789".repeat(4)).unwrap().short(), "012345678901");
    }

    #[test]
    fn app_names_are_slugs() {
        assert!(AppName::parse("hello").is_ok());
        assert!(AppName::parse("hello-2").is_ok());
        for bad in ["", "Hello", "-a", "a-", "a_b", &"a".repeat(33)] {
            assert!(AppName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn short_never_panics() {
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(short("ééééé", 2), "éé");
        assert_eq!(short_sha(&"a".repeat(40)).len(), 12);
    }

    #[test]
    fn ami_and_instance_ids() {
        assert!(AmiId::parse("ami-0abc123").is_ok());
        assert!(AmiId::parse("ami-").is_err());
        assert!(AmiId::parse("i-0abc").is_err());
        assert!(InstanceId::parse("i-0abc").is_ok());
    }
}
