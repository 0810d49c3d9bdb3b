//! Mastodon's JSON entities, shared by every endpoint that returns them.

pub mod account;
pub mod html;
pub mod media_attachment;
pub mod notification;
pub mod poll;
pub mod preview_card;
pub mod relationship;
pub mod status;
pub mod token;

pub use account::{
    Account, AccountRow, CredentialAccount, account_json, credential_account_json, load_accounts,
};
pub use relationship::{Relationship, relationships};
pub use token::Token;
