//! The bearer token port: whoever signs tokens (meetline's own HS256 secret, the OA suite's
//! identity provider), the API sees only who a valid token names.

use crate::types::Principal;

/// A token that does not verify (malformed, badly signed, expired, too long-lived, or naming a
/// tenant that does not exist). Why is not said: a caller learns nothing from a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid token")]
pub struct InvalidToken;

/// Verifies bearer tokens.
pub trait TokenVerifier: Send + Sync + std::fmt::Debug + 'static {
    /// Who the token names.
    ///
    /// # Errors
    /// [`InvalidToken`] for any token that is not valid now.
    fn verify(&self, token: &str) -> Result<Principal, InvalidToken>;
}
