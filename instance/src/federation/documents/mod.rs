//! The documents peers fetch from us.

pub mod actor;
pub mod collections;
pub mod note;
pub mod webfinger;
