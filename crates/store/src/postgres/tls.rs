//! `sslmode` and `sslrootcert` in a PostgreSQL connection string.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` and refuses libpq's
//! `verify-ca`, `verify-full` and `sslrootcert`. They are taken out here and
//! turned into the rustls configuration ([`crate::tls`]) that checks what they
//! ask for; tokio-postgres then sees `sslmode=require`. Both the URL form
//! (`postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem`) and the
//! key=value form (`host=h sslmode=verify-full sslrootcert=/ca.pem`) work.

use std::path::PathBuf;

use crate::tls::Verify;

/// A connection string with the TLS settings taken out of it.
#[derive(Debug, PartialEq)]
pub(crate) struct TlsSettings {
    /// What tokio-postgres parses.
    pub url: String,
    /// What to check of the server's certificate.
    pub verify: Verify,
    /// The trusted roots (`sslrootcert`); `None` means the system's.
    pub root_cert: Option<PathBuf>,
}

/// Splits the TLS settings out of `url`.
pub(crate) fn split(url: &str) -> Result<TlsSettings, String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (head, params, separator) = match (is_url, url.split_once('?')) {
        (true, Some((head, query))) => (head.to_owned(), query.split('&').collect::<Vec<_>>(), "&"),
        (true, None) => (url.to_owned(), Vec::new(), "&"),
        (false, _) => (String::new(), url.split_whitespace().collect(), " "),
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for param in params {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let decoded = || -> String {
            if is_url {
                url::form_urlencoded::parse(format!("v={value}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            } else {
                value.trim_matches('\'').to_owned()
            }
        };
        match key {
            "sslmode" => mode = Some(decoded()),
            "sslrootcert" => root_cert = Some(PathBuf::from(decoded())),
            _ => kept.push(param.to_owned()),
        }
    }
    let (verify, passed_mode) = match mode.as_deref() {
        Some("verify-full") => (Verify::Full, Some("require")),
        Some("verify-ca") => (Verify::Chain, Some("require")),
        // As libpq: `require` with a root certificate checks the chain.
        Some("require") if root_cert.is_some() => (Verify::Chain, Some("require")),
        Some(other @ ("disable" | "allow" | "prefer" | "require")) => (Verify::Nothing, Some(other)),
        None => (Verify::Nothing, None),
        Some(other) => {
            return Err(format!(
                "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    // tokio-postgres has no `allow`; `prefer` is the nearest (it tries TLS).
    if let Some(mode) = passed_mode {
        kept.push(format!("sslmode={}", if mode == "allow" { "prefer" } else { mode }));
    }
    let url = match (is_url, kept.is_empty()) {
        (true, true) => head,
        (true, false) => format!("{head}?{}", kept.join(separator)),
        (false, _) => kept.join(separator),
    };
    Ok(TlsSettings { url, verify, root_cert })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_full_in_a_url_becomes_require_with_full_checks() {
        let s = split(
            "postgres://u@db:5432/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=a",
        )
        .expect("valid");
        assert_eq!(s.url, "postgres://u@db:5432/x?application_name=a&sslmode=require");
        assert_eq!((s.verify, s.root_cert), (Verify::Full, Some(PathBuf::from("/etc/ca.pem"))));
    }

    #[test]
    fn key_value_strings_work_too() {
        let s = split("host=db user=u sslmode=verify-ca sslrootcert=/ca.pem").expect("valid");
        assert_eq!(s.url, "host=db user=u sslmode=require");
        assert_eq!((s.verify, s.root_cert), (Verify::Chain, Some(PathBuf::from("/ca.pem"))));
    }

    #[test]
    fn plain_modes_pass_through_and_no_mode_is_left_alone() {
        let s = split("postgres://u@db/x?options=-csearch_path%3Ds").expect("valid");
        assert_eq!(
            (s.url.as_str(), s.verify),
            ("postgres://u@db/x?options=-csearch_path%3Ds", Verify::Nothing)
        );
        let s = split("postgres://u@db/x?sslmode=disable").expect("valid");
        assert_eq!(s.url, "postgres://u@db/x?sslmode=disable");
        assert_eq!(
            split("postgres://u@db/x?sslmode=allow").expect("valid").url,
            "postgres://u@db/x?sslmode=prefer"
        );
        assert!(split("postgres://u@db/x?sslmode=sometimes").is_err());
    }
}
