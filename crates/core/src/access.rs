//! Who may touch which progress: the authorization decision, as a pure
//! function of a verified [`Principal`] and what a request asks for.
//!
//! A principal is what a bearer token proved: the one account it may act
//! on, optionally only some of that account's profiles, and its scopes —
//! `playback:read` (resume, continue-watching), `playback:write` (update,
//! batch, hide, delete) and `playback:admin` (any account: support tools,
//! backfills; the only way across accounts). With authentication off,
//! every request acts as [`Principal::unrestricted`].

use crate::{AccountId, IdError, ProfileId};

/// What a request does to the progress it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Reads it: resume, continue-watching.
    Read,
    /// Changes it: update, batch, hide, delete.
    Write,
}

crate::wire_names! {
    /// A token's permissions, as its `scope` claim spells them.
    pub enum Scope {
        /// Resume and continue-watching.
        Read = "playback:read",
        /// Update, batch, hide and delete.
        Write = "playback:write",
        /// Any account, read and write, and the metrics.
        Admin = "playback:admin",
    }
}

/// The scopes a principal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Scopes {
    /// `playback:read`.
    pub read: bool,
    /// `playback:write`.
    pub write: bool,
    /// `playback:admin`.
    pub admin: bool,
}

impl Scopes {
    /// Read and write, no admin: what a token without a `scope` claim holds.
    pub const PLAYER: Scopes = Scopes { read: true, write: true, admin: false };

    /// The scopes a space-separated `scope` claim names; `None` (no claim)
    /// means read and write. Names this service does not know are ignored
    /// (a token may carry other services' scopes).
    pub fn from_claim(claim: Option<&str>) -> Scopes {
        let Some(claim) = claim else { return Scopes::PLAYER };
        let mut scopes = Scopes::default();
        for name in claim.split_ascii_whitespace() {
            match Scope::parse(name) {
                Some(Scope::Read) => scopes.read = true,
                Some(Scope::Write) => scopes.write = true,
                Some(Scope::Admin) => scopes.admin = true,
                None => {}
            }
        }
        scopes
    }

    fn allow(self, access: Access) -> bool {
        self.admin
            || match access {
                Access::Read => self.read,
                Access::Write => self.write,
            }
    }
}

/// Who a request acts as, once its token is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account the token names (its account claim).
    pub account: AccountId,
    /// When the token names profiles: only these.
    pub profiles: Option<Vec<ProfileId>>,
    /// What it may do.
    pub scopes: Scopes,
    /// True only for [`Principal::unrestricted`].
    unrestricted: bool,
}

/// Why a request may not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The request names an account the token is not for (HTTP 403).
    #[error("this token is for another account")]
    OtherAccount,
    /// The request names a profile the token does not list (HTTP 403).
    #[error("this token is not for profile {0}")]
    OtherProfile(ProfileId),
    /// The token lacks the scope the operation needs (HTTP 403).
    #[error("this token lacks the {} scope", .0.as_str())]
    MissingScope(Scope),
    /// An admin token must name the account it acts on (HTTP 400, naming
    /// `account_id`).
    #[error("account_id is required with an admin token")]
    AccountRequired,
    /// The request's `account_id` is not a valid id (HTTP 400).
    #[error("account_id {0}")]
    InvalidAccount(IdError),
}

impl Principal {
    /// A principal for a verified token.
    pub fn new(account: AccountId, profiles: Option<Vec<ProfileId>>, scopes: Scopes) -> Self {
        Self { account, profiles, scopes, unrestricted: false }
    }

    /// Anyone, anything: what every request is with authentication off. It
    /// must name its account, as the API always required.
    pub fn unrestricted() -> Self {
        Self {
            account: AccountId::parse("unrestricted").unwrap_or_else(|_| unreachable!("a valid id")),
            profiles: None,
            scopes: Scopes { read: true, write: true, admin: true },
            unrestricted: true,
        }
    }

    /// True when the principal may act on any account.
    pub fn is_admin(&self) -> bool {
        self.scopes.admin
    }

    /// True with authentication off.
    pub fn is_unrestricted(&self) -> bool {
        self.unrestricted
    }

    /// The account a request acts on: the one it names, which must be the
    /// token's own unless the token is an admin's; or, when it names none,
    /// the token's (an admin token, or no authentication at all, must name
    /// one). `None` from a principal that must name one is
    /// [`Denied::AccountRequired`].
    pub fn account_for(&self, requested: Option<&str>) -> Result<AccountId, Denied> {
        match requested {
            None if self.is_admin() => Err(Denied::AccountRequired),
            None => Ok(self.account.clone()),
            Some(raw) => {
                let account = AccountId::parse(raw).map_err(Denied::InvalidAccount)?;
                if self.is_admin() || account == self.account {
                    Ok(account)
                } else {
                    Err(Denied::OtherAccount)
                }
            }
        }
    }

    /// May this principal do `access` to `profile` of `account`? Checked
    /// before the store is touched.
    pub fn authorize(&self, account: &AccountId, profile: &ProfileId, access: Access) -> Result<(), Denied> {
        if !self.scopes.allow(access) {
            return Err(Denied::MissingScope(match access {
                Access::Read => Scope::Read,
                Access::Write => Scope::Write,
            }));
        }
        if self.is_admin() {
            return Ok(());
        }
        if *account != self.account {
            return Err(Denied::OtherAccount);
        }
        match &self.profiles {
            Some(profiles) if !profiles.contains(profile) => Err(Denied::OtherProfile(profile.clone())),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(s: &str) -> AccountId {
        AccountId::parse(s).expect("valid")
    }

    fn profile(s: &str) -> ProfileId {
        ProfileId::parse(s).expect("valid")
    }

    fn token(scope: Option<&str>, profiles: Option<&[&str]>) -> Principal {
        Principal::new(
            account("acct"),
            profiles.map(|p| p.iter().map(|s| profile(s)).collect()),
            Scopes::from_claim(scope),
        )
    }

    /// Every combination of scope claim × profile restriction × account ×
    /// profile × access, against the rule written out longhand.
    #[test]
    fn the_decision_is_exactly_the_rule_for_every_combination() {
        let scopes = [
            None,
            Some(""),
            Some("playback:read"),
            Some("playback:write"),
            Some("playback:read playback:write"),
            Some("playback:admin"),
            Some("other:thing playback:read"),
        ];
        let restrictions: [Option<&[&str]>; 3] = [None, Some(&["A"]), Some(&[])];
        for scope in scopes {
            for restriction in restrictions {
                let p = token(scope, restriction);
                for acct in ["acct", "other"] {
                    for prof in ["A", "B"] {
                        for access in [Access::Read, Access::Write] {
                            let names = |s: &str| scope.is_none_or(|c| c.split(' ').any(|n| n == s));
                            let admin = scope.is_some_and(|c| c.split(' ').any(|n| n == "playback:admin"));
                            let scoped = admin
                                || match access {
                                    Access::Read => names("playback:read"),
                                    Access::Write => names("playback:write"),
                                };
                            let expected = if !scoped {
                                Err(Denied::MissingScope(match access {
                                    Access::Read => Scope::Read,
                                    Access::Write => Scope::Write,
                                }))
                            } else if admin {
                                Ok(())
                            } else if acct != "acct" {
                                Err(Denied::OtherAccount)
                            } else if restriction.is_some_and(|r| !r.contains(&prof)) {
                                Err(Denied::OtherProfile(profile(prof)))
                            } else {
                                Ok(())
                            };
                            assert_eq!(
                                p.authorize(&account(acct), &profile(prof), access),
                                expected,
                                "scope {scope:?}, profiles {restriction:?}, {acct}/{prof}, {access:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_account_comes_from_the_token_unless_an_admin_names_one() {
        let player = token(None, None);
        assert_eq!(player.account_for(None), Ok(account("acct")));
        assert_eq!(player.account_for(Some("acct")), Ok(account("acct")));
        assert_eq!(player.account_for(Some("other")), Err(Denied::OtherAccount));
        assert!(matches!(player.account_for(Some("a b")), Err(Denied::InvalidAccount(_))));
        let admin = token(Some("playback:admin"), None);
        assert_eq!(admin.account_for(None), Err(Denied::AccountRequired));
        assert_eq!(admin.account_for(Some("other")), Ok(account("other")));
        let open = Principal::unrestricted();
        assert_eq!(open.account_for(None), Err(Denied::AccountRequired));
        assert_eq!(open.authorize(&account("x"), &profile("y"), Access::Write), Ok(()));
    }
}
