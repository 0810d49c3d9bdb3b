//! Which certificate authorities the server and the operator accept from the services an
//! instance is configured with (OpenSearch today). The public web PKI alone is not enough:
//! an in-cluster or managed service often has a certificate from a private CA, which an
//! operator adds to the system store or names with `SSL_CERT_FILE` / `SSL_CERT_DIR`.
//! Federation peers are another matter: they are public servers, checked against the web
//! PKI only (`federation::fetch`).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

/// A TLS client on ring (the one crypto provider of the project) for configured services:
/// `service_roots`. Also returns the system store's errors, for the caller to log.
pub fn service_client() -> Result<(ClientConfig, Vec<String>), rustls::Error> {
    let (roots, errors) = service_roots();
    Ok((client(roots)?, errors))
}

/// A TLS client on ring trusting the public web PKI only: for federation peers, public
/// servers whose certificates a private CA of this cluster must not vouch for.
pub fn public_client() -> Result<ClientConfig, rustls::Error> {
    client(RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
}

fn client(roots: RootCertStore) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The web PKI plus every certificate of the system store that parses. A store that cannot
/// be read leaves the web PKI; the errors are returned for the caller to log.
pub fn service_roots() -> (RootCertStore, Vec<String>) {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let native = rustls_native_certs::load_native_certs();
    let mut errors: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
    let (_, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        errors.push(format!(
            "{ignored} certificate(s) of the system store do not parse"
        ));
    }
    (roots, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_pki_is_always_there() {
        let (roots, _) = service_roots();
        assert!(roots.len() >= webpki_roots::TLS_SERVER_ROOTS.len());
        assert!(service_client().is_ok());
        assert!(public_client().is_ok());
    }
}
