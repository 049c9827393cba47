//! The store error every adapter maps into.

/// A boxed error from a backend's own client library.
pub type BackendSource = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed. Adapters map their private errors into these
/// variants so the service layer can apply one policy to every backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot serve requests right now (down, shutting down,
    /// overloaded). Retrying later may succeed.
    #[error("{backend} store is unavailable: {reason}")]
    Unavailable {
        /// Which backend.
        backend: &'static str,
        /// What a person reading the log should know.
        reason: String,
    },
    /// The operation did not finish within its deadline. It may or may not
    /// have taken effect.
    #[error("{backend} store timed out")]
    Timeout {
        /// Which backend.
        backend: &'static str,
    },
    /// A stored value could not be decoded.
    #[error("{backend} store holds a corrupt record: {detail}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// Any other failure reported by the backend.
    #[error("{backend} store failed")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The backend's own error.
        #[source]
        source: BackendSource,
    },
}

impl StoreError {
    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. } | StoreError::Timeout { .. })
    }

    /// An error of the same kind and message, for each of several callers
    /// that one failure answers (a failed group commit, say). A backend's
    /// own error is kept as its message.
    pub fn same_kind(&self) -> StoreError {
        match self {
            StoreError::Unavailable { backend, reason } => {
                StoreError::Unavailable { backend, reason: reason.clone() }
            }
            StoreError::Timeout { backend } => StoreError::Timeout { backend },
            StoreError::Corrupt { backend, detail } => {
                StoreError::Corrupt { backend, detail: detail.clone() }
            }
            StoreError::Backend { backend, source } => {
                StoreError::Backend { backend, source: source.to_string().into() }
            }
        }
    }
}
