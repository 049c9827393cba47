//! Validated identifiers.
//!
//! Every id is 1–128 characters from `A-Z a-z 0-9 . _ : -` (docs/api.md#identifiers). The set is
//! ASCII and excludes separators such as NUL and `/`, so stores may join ids
//! into composite keys without escaping. An id that exists as a value has been
//! validated: there is no way to build one from an unchecked string.

use std::fmt;

/// The longest identifier accepted, in characters (all ids are ASCII).
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string was empty.
    #[error("must not be empty")]
    Empty,
    /// The string was longer than [`MAX_ID_LEN`].
    #[error("must be at most {MAX_ID_LEN} characters (got {0})")]
    TooLong(usize),
    /// The string held a character outside the allowed set.
    #[error("may only contain A-Z a-z 0-9 . _ : - (found {0:?})")]
    InvalidChar(char),
}

fn validate(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if let Some(bad) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(IdError::InvalidChar(bad));
    }
    // Only ASCII is left, so the byte length is the character count.
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(s.len()));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate(&s)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
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
    /// A household account; the unit of billing and of authorization.
    AccountId
);
id_type!(
    /// A viewer profile inside an account; progress is tracked per profile.
    ProfileId
);
id_type!(
    /// A title: a film or an episode.
    VideoId
);
id_type!(
    /// The device (TV, phone, browser) that sent a checkpoint.
    DeviceId
);
id_type!(
    /// A series a title belongs to, as the player names it (playmark keeps
    /// no catalog).
    SeriesId
);

/// One profile of one account: the partition under which its titles live.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileKey {
    /// The account the profile belongs to.
    pub account_id: AccountId,
    /// The profile inside the account.
    pub profile_id: ProfileId,
}

/// The primary key of a progress record: `(account_id, profile_id, video_id)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgressKey {
    /// The account the profile belongs to.
    pub account_id: AccountId,
    /// The profile whose progress this is.
    pub profile_id: ProfileId,
    /// The title being watched.
    pub video_id: VideoId,
}

/// `account/profile` (ids never contain `/`): for logs.
impl fmt::Display for ProfileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account_id, self.profile_id)
    }
}

/// `account/profile/video` (ids never contain `/`): for logs.
impl fmt::Display for ProgressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account_id, self.profile_id, self.video_id)
    }
}

impl ProgressKey {
    /// The profile partition this key belongs to.
    pub fn profile(&self) -> ProfileKey {
        ProfileKey { account_id: self.account_id.clone(), profile_id: self.profile_id.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_allowed_character() {
        let all = "AZaz09._:-";
        assert_eq!(VideoId::parse(all).map(|v| v.to_string()), Ok(all.to_owned()));
    }

    #[test]
    fn accepts_exactly_128_characters_and_rejects_129() {
        assert!(AccountId::parse("a".repeat(128)).is_ok());
        assert_eq!(AccountId::parse("a".repeat(129)), Err(IdError::TooLong(129)));
    }

    #[test]
    fn rejects_empty_and_foreign_characters() {
        assert_eq!(ProfileId::parse(""), Err(IdError::Empty));
        assert_eq!(ProfileId::parse("a b"), Err(IdError::InvalidChar(' ')));
        assert_eq!(ProfileId::parse("a/b"), Err(IdError::InvalidChar('/')));
        assert_eq!(ProfileId::parse("a\0"), Err(IdError::InvalidChar('\0')));
        assert_eq!(ProfileId::parse("é"), Err(IdError::InvalidChar('é')));
    }

    #[test]
    fn non_ascii_input_reports_the_character_not_the_length() {
        // 200 two-byte characters: the character is the actionable problem.
        assert_eq!(DeviceId::parse("é".repeat(200)), Err(IdError::InvalidChar('é')));
    }
}
