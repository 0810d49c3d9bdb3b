//! The server's settings from a list of variables, for tests that call its code in-process.

use fedi_config::ServerConfig;

/// The settings `vars` make (nothing is read from the process environment); panics if
/// they are refused.
pub fn config_from(vars: &[(&str, &str)]) -> ServerConfig {
    ServerConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .expect("the test's settings are valid")
}
