//! TLS material for tests: a throw-away CA and a server certificate.

use std::path::PathBuf;

/// A throw-away CA and a server certificate it signed for `127.0.0.1` and `localhost`,
/// as PEM files in a temporary directory (removed on drop).
#[derive(Debug)]
pub struct Certs {
    dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca_pem: String,
}

impl Certs {
    /// Generates them (`rcgen`, no `openssl` needed).
    pub fn generate() -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "socketioxide-cluster test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "redis test server");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let dir = std::env::temp_dir().join(format!(
            "socketioxide-cluster-tls-{}-{}",
            std::process::id(),
            crate::redis::unique_key("certs")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = Certs {
            dir,
            ca_pem: ca_cert.pem(),
        };
        std::fs::write(certs.path("ca.pem"), &certs.ca_pem).unwrap();
        std::fs::write(certs.path("server.pem"), server_cert.pem()).unwrap();
        std::fs::write(certs.path("server.key"), server_key.serialize_pem()).unwrap();
        certs
    }

    /// `ca.pem`, `server.pem` or `server.key`, as a path.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl Certs {
    /// The `redis-server` arguments of a TLS listener on `tls_port` with these
    /// certificates, without client certificates, and TLS for replication (and, on a
    /// sentinel, for its links to the instances and to other sentinels).
    pub fn redis_args(&self, tls_port: u16) -> Vec<String> {
        [
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &self.path("server.pem"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.pem"),
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}
