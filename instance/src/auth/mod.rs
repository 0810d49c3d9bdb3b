//! Who is asking: OAuth2 scopes (pure), tokens and passwords (hashing), and the extractor
//! that turns a bearer token into an authenticated caller.

pub mod credentials;
pub mod scopes;
pub mod token;
pub mod token_cache;
pub mod token_changes;

pub use scopes::{Scope, Scopes};
pub use token::{Auth, MaybeAuth};
