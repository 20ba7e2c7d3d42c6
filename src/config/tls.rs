//! The TLS side of `[mqtt]`: which CAs the broker's certificate must chain
//! to, and the client certificate for mutual TLS.
//!
//! The files are read and parsed here, by validation as well as on connect,
//! so a missing or mangled file is a configuration error at start-up (naming
//! its key) rather than a broker that cannot be reached later.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::load::{ConfigError, ConfigErrors};
use super::MqttConfig;

impl MqttConfig {
    /// The rustls client configuration for an `mqtts://` broker.
    ///
    /// The server's certificate must chain to `ca_file` (or the system roots)
    /// and name the host of `mqtt.url`: rustls always checks the name, and
    /// there is deliberately no key to turn that off. The crypto provider is
    /// ring, which cross-compiles for the Pi with a plain C cross compiler.
    pub fn tls_config(&self) -> Result<ClientConfig, ConfigErrors> {
        let roots = self.roots();
        let identity = self.client_identity();
        let (roots, identity) = match (roots, identity) {
            (Ok(roots), Ok(identity)) => (roots, identity),
            (roots, identity) => {
                return Err(ConfigErrors(
                    roots.err().into_iter().chain(identity.err()).collect(),
                ))
            }
        };
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("ring provides TLS 1.2 and 1.3")
                .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
                ConfigErrors(vec![error(
                    "mqtt.client_key_file",
                    format!("does not go with mqtt.client_cert_file: {e}"),
                )])
            })?,
        };
        Ok(config)
    }

    /// `ca_file`'s certificates, or the system's trusted roots. The system
    /// store (Debian's ca-certificates, with any company CA added through
    /// `update-ca-certificates`) is updated with the OS, whereas roots
    /// compiled into the binary would age with it on a Pi left for years.
    fn roots(&self) -> Result<RootCertStore, ConfigError> {
        let certs = match &self.ca_file {
            Some(path) => read_certs("mqtt.ca_file", path)?,
            None => rustls_native_certs::load_native_certs().certs,
        };
        let mut roots = RootCertStore::empty();
        let (_, rejected) = roots.add_parsable_certificates(certs);
        if roots.is_empty() {
            let message = match &self.ca_file {
                Some(path) => format!(
                    "{}: none of its {rejected} certificates can be used as a CA",
                    path.display()
                ),
                None => "not set, and the system has no CA certificates \
                         (install ca-certificates, or set mqtt.ca_file)"
                    .to_string(),
            };
            return Err(error("mqtt.ca_file", message));
        }
        Ok(roots)
    }

    /// The client certificate chain and its key, when both are set.
    #[allow(clippy::type_complexity)]
    fn client_identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, ConfigError> {
        match (&self.client_cert_file, &self.client_key_file) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(error(
                "mqtt.client_key_file",
                "is required with mqtt.client_cert_file",
            )),
            (None, Some(_)) => Err(error(
                "mqtt.client_cert_file",
                "is required with mqtt.client_key_file",
            )),
            (Some(cert), Some(key)) => {
                let certs = read_certs("mqtt.client_cert_file", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    error(
                        "mqtt.client_key_file",
                        format!("{}: {}", key.display(), pem_problem(&e, "private key")),
                    )
                })?;
                Ok(Some((certs, key)))
            }
        }
    }
}

/// Every certificate in the PEM file at `path`; at least one.
fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let fail = |e: &rustls::pki_types::pem::Error| {
        error(
            key,
            format!("{}: {}", path.display(), pem_problem(e, "certificate")),
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    if certs.is_empty() {
        return Err(fail(&rustls::pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// What is wrong with a PEM file, in a technician's words. The parser's own
/// detail is left out: for a key file it could quote what it choked on.
fn pem_problem(e: &rustls::pki_types::pem::Error, what: &str) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(e) => format!("cannot read: {e}"),
        E::NoItemsFound => format!("no PEM {what} in it (-----BEGIN ...-----)"),
        _ => "not valid PEM (a damaged or truncated -----BEGIN/END----- section)".into(),
    }
}

fn error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}
