//! The "proxytunnel utility" download of the admin listener (manual: Download
//! Proxytunnel Utility): the CA certificate partners' proxytunnel must trust,
//! and the ready commands for Linux, Windows and PuTTY, filled in for this
//! deployment, so that an engineer only replaces the customer part.
//!
//! The commands follow the manual's forms (Using SSH from Linux/Windows, PuTTY
//! local proxy command, RDP with `--standalone`), with our proxy address and
//! CA file instead of the manual's ISRG root.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

/// File name of the CA certificate inside the bundle.
pub const CA_FILE: &str = "comgate-ca.pem";

/// Why the bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("building the zip archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("writing the zip archive: {0}")]
    Io(#[from] std::io::Error),
}

/// The text of `README.txt`: every command for this domain and proxy address
/// (`maint.<domain>:<port>` or the configured public address).
pub fn readme(domain: &str, proxy: &str) -> String {
    let dest = format!("<customer-id>[-<system-name>][-<co-located-server-ip>].maint.{domain}");
    format!(
        "comgate remote support: proxytunnel commands for {domain}\r\n\
         ===========================================================\r\n\
         \r\n\
         Proxy (the front door): {proxy}\r\n\
         CA certificate to trust: {CA_FILE} (in this archive)\r\n\
         Replace <...> with your values; [...] parts are optional (omit the brackets).\r\n\
         Credentials: your reseller's or distributor's maintenance proxy account.\r\n\
         \r\n\
         Destination: {dest}\r\n\
         \x20 primary system:     <customer-id>.maint.{domain}\r\n\
         \x20 other system:       <customer-id>-<system-name>.maint.{domain}\r\n\
         \x20 co-located server:  <customer-id>-<system-name>-<ip>.maint.{domain}\r\n\
         \r\n\
         Linux (install proxytunnel from your distribution, e.g. apt-get install proxytunnel)\r\n\
         -------------------------------------------------------------------------------\r\n\
         SSH:\r\n\
         \x20 ssh <user-name>@<customer-id>.maint.{domain} -p 22 -oProxyCommand=\"proxytunnel -E --proxy={proxy} --dest={dest}:22 -P '<proxy-username>:<proxy-password>' -C /path/to/{CA_FILE}\"\r\n\
         PuTTY host name:\r\n\
         \x20 {dest}\r\n\
         PuTTY local proxy command (Connection > Proxy > Local):\r\n\
         \x20 proxytunnel -E --proxy={proxy} --dest={dest}:22 -P '<proxy-username>:<proxy-password>' -C /path/to/{CA_FILE}\r\n\
         \r\n\
         Windows (proxytunnel.exe, e.g. in C:\\Proxytunnel\\)\r\n\
         ---------------------------------------------------\r\n\
         SSH:\r\n\
         \x20 ssh <user-name>@<customer-id>.maint.{domain} -p 22 -oProxyCommand=\"C:\\Proxytunnel\\proxytunnel.exe -E --proxy={proxy} --dest={dest}:22 -P '<proxy-username>:<proxy-password>' -C C:\\Proxytunnel\\{CA_FILE}\"\r\n\
         PuTTY local proxy command:\r\n\
         \x20 C:\\Proxytunnel\\proxytunnel.exe -E --proxy={proxy} --dest={dest}:22 -P '<proxy-username>:<proxy-password>' -C C:\\Proxytunnel\\{CA_FILE}\r\n\
         RDP (then connect Remote Desktop to 127.0.0.1:<free-local-port>):\r\n\
         \x20 C:\\Proxytunnel\\proxytunnel.exe --standalone=<free-local-port> -E --proxy={proxy} --dest={dest}:3389 -P '<proxy-username>:<proxy-password>' -C C:\\Proxytunnel\\{CA_FILE}\r\n\
         \r\n\
         Notes\r\n\
         -----\r\n\
         - A destination without :port means port 22.\r\n\
         - ssh expands %: write a % in the password as %%. PuTTY expands % and \\: write %% and \\\\.\r\n\
         - Add -oHostKeyAlias=<destination> to ssh so that systems behind one address keep separate host keys.\r\n\
         - --standalone listens on every interface of your PC; close it when done.\r\n"
    )
}

/// The zip archive: `README.txt` and the CA certificate.
pub fn bundle(domain: &str, proxy: &str, ca_pem: &str) -> Result<Vec<u8>, BundleError> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("comgate-proxytunnel/README.txt", opts)?;
    zip.write_all(readme(domain, proxy).as_bytes())?;
    zip.start_file(format!("comgate-proxytunnel/{CA_FILE}"), opts)?;
    zip.write_all(ca_pem.as_bytes())?;
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_names_this_deployment_everywhere() {
        let text = readme("example.com", "maint.example.com:6443");
        assert!(text.contains("--proxy=maint.example.com:6443"));
        assert!(text.contains(".maint.example.com:22"));
        assert!(text.contains("--standalone=<free-local-port>"));
        assert!(
            !text.contains("<com-domain>"),
            "no manual placeholders left"
        );
    }

    #[test]
    fn bundle_holds_readme_and_ca() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let bytes = bundle("example.com", "maint.example.com:6443", ca).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = archive
            .file_names()
            .map(|n| n.unwrap().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "comgate-proxytunnel/README.txt",
                "comgate-proxytunnel/comgate-ca.pem"
            ]
        );
        let mut got = String::new();
        std::io::Read::read_to_string(
            &mut archive
                .by_name("comgate-proxytunnel/comgate-ca.pem")
                .unwrap(),
            &mut got,
        )
        .unwrap();
        assert_eq!(got, ca);
    }
}
