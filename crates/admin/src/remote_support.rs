//! The remote-support addresses of one system (manual chapters 22-27): the
//! ssh command lines, PuTTY host name and local proxy command, the RDP
//! `--standalone` command and the HTTPS links an engineer copies out of the
//! system's details, filled in for this deployment.
//!
//! The strings keep the manual's forms, quoting included (the Linux ssh
//! command nests `"` inside `-oProxyCommand="..."`, which a POSIX shell
//! reads as one argument because the proxy address holds no blank), so that
//! a partner who knows the manual recognises them and an end-to-end test can
//! run them unmodified. What the deployment knows is filled in: the proxy
//! address, the domain, the customer and system, the proxy account's
//! username. What only the engineer knows stays a `<placeholder>` in the
//! manual's spelling: their login on the target, the proxy password (stored
//! as a hash, never readable), the path of proxytunnel and of the CA file
//! from the utility download, a co-located server's address. The CA file
//! replaces the manual's ISRG root: comgate's front door may be signed by
//! its own CA, and the utility download carries whichever certificate
//! partners must trust.
//!
//! Whether they are shown at all is decided by the caller: the role
//! ([`crate::permissions::Action::ViewRemoteSupportAddresses`]) and the
//! site's Remote Access setting ([`RemoteSupport::Disabled`]).

use serde::Serialize;

/// Placeholders left for the engineer, in the manual's spelling.
pub mod placeholder {
    pub const USER_NAME: &str = "<user-name>";
    pub const EXTERNAL_SERVER_IP: &str = "<external-server-ip-address>";
    pub const PROXY_PASSWORD: &str = "<proxy-password>";
    pub const PROXYTUNNEL_EXE: &str = "<full-path-to-proxytunnel.exe>";
    pub const CA_FILE: &str = "<full-path-to-comgate-ca.pem>";
    pub const CO_LOCATED_IP: &str = "<co-located-server-ip-address>";
    pub const FREE_LOCAL_PORT: &str = "<free-port-on-local-host>";
    pub const REMOTE_PORT: &str = "<remote-port>";
    pub const REQUIRED_PATH: &str = "<required-path>";
    pub const TARGET_IP_OFFICE_IP: &str = "<target-ip-office-ip-address>";
}

/// What the deployment contributes to every address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// The domain: maintenance names end in `.maint.<domain>`.
    pub domain: String,
    /// The front door as partners name it (`maint.<domain>:6443` or the
    /// configured public address).
    pub proxy: String,
    /// File name of the CA certificate in the proxytunnel utility download,
    /// for the PuTTY command, which names it relative to proxytunnel.exe as
    /// the manual does.
    pub ca_file: String,
    /// Whether the central-management proxy (`admin.<domain>:8443`) runs.
    pub central_management: bool,
}

/// The system the addresses lead to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemRef<'a> {
    pub customer_id: &'a str,
    /// The system's DNS label (its name as maintenance addresses spell it).
    pub label: &'a str,
    pub is_primary: bool,
    /// The maintenance proxy account of the customer's reseller or
    /// distributor; `None` while neither has one (the username stays a
    /// placeholder then).
    pub proxy_username: Option<&'a str>,
}

/// The addresses of one system, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RemoteSupport {
    /// The site does not allow Remote Access; the manual shows this text.
    Disabled {
        message: &'static str,
    },
    Enabled(Box<Addresses>),
}

/// The text the manual shows instead of the addresses.
pub const DISABLED_MESSAGE: &str = "Remote Access is Disabled";

/// Every address of one system, each a ready string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Addresses {
    /// The maintenance name of the system itself.
    pub destination: String,
    /// The maintenance name of a server co-located with the system.
    pub co_located_destination: String,
    pub linux_ssh: String,
    pub linux_ssh_co_located: String,
    pub linux_putty_host_name: String,
    pub linux_putty_proxy_command: String,
    pub windows_ssh: String,
    pub windows_ssh_co_located: String,
    pub windows_putty_host_name: String,
    pub windows_putty_proxy_command: String,
    /// RDP to a co-located server through `proxytunnel --standalone`.
    pub rdp_standalone: String,
    pub web_control_panel: String,
    pub one_x_portal: String,
    pub weblm: String,
    /// HTTPS to a co-located server (through a browser set up with the PAC).
    pub co_located_https: String,
    /// Web Manager and SysMon/SSA through the central-management proxy;
    /// `None` when this deployment does not run it.
    pub web_manager: Option<String>,
    pub sysmon_ssa: Option<String>,
}

/// The addresses of `system`, or [`RemoteSupport::Disabled`] when the site
/// has Remote Access off.
pub fn addresses(
    deployment: &Deployment,
    system: &SystemRef<'_>,
    remote_access: bool,
) -> RemoteSupport {
    if !remote_access {
        return RemoteSupport::Disabled {
            message: DISABLED_MESSAGE,
        };
    }
    use placeholder::*;
    let domain = &deployment.domain;
    let proxy = &deployment.proxy;
    let customer = system.customer_id;
    let named = format!("{customer}-{}", system.label);
    // The primary system is reached without its name (manual: "Primary:
    // <customer-id>.maint.<com-domain>"), the others with it.
    let reached = if system.is_primary { customer } else { &named };
    let destination = format!("{reached}.maint.{domain}");
    let co_located_destination = format!("{reached}-{CO_LOCATED_IP}.maint.{domain}");
    let credentials = format!(
        "{}:{PROXY_PASSWORD}",
        system.proxy_username.unwrap_or("<proxy-username>")
    );
    let ssh = |proxytunnel: &str, dest: &str| {
        format!(
            "ssh {USER_NAME}@{EXTERNAL_SERVER_IP} -p 22 -oProxyCommand=\"{proxytunnel} -E --proxy=\"{proxy}\" --dest='{dest}:22' -P '{credentials}' -C '{CA_FILE}'\""
        )
    };
    let putty_proxy = |proxytunnel: &str, ca: &str| {
        format!(
            "{proxytunnel} -E --proxy=\"{proxy}\" --dest=\"{destination}\" -P '{credentials}' -C '{ca}'"
        )
    };
    let https = |port: u16, path: &str| format!("https://{named}.maint.{domain}:{port}/{path}");
    let central = |s: String| deployment.central_management.then_some(s);
    RemoteSupport::Enabled(Box::new(Addresses {
        linux_ssh: ssh("proxytunnel", &destination),
        linux_ssh_co_located: ssh("proxytunnel", &co_located_destination),
        linux_putty_host_name: destination.clone(),
        linux_putty_proxy_command: putty_proxy("proxytunnel", CA_FILE),
        windows_ssh: ssh(PROXYTUNNEL_EXE, &destination),
        windows_ssh_co_located: ssh(PROXYTUNNEL_EXE, &co_located_destination),
        windows_putty_host_name: destination.clone(),
        windows_putty_proxy_command: putty_proxy("proxytunnel.exe", &deployment.ca_file),
        rdp_standalone: format!(
            "{PROXYTUNNEL_EXE} --standalone={FREE_LOCAL_PORT} -E --proxy=\"{proxy}\" --dest=\"{co_located_destination}:3389\" -P '{credentials}' -C '{CA_FILE}'"
        ),
        web_control_panel: https(7071, "login"),
        one_x_portal: https(9443, "onexportal-admin.html"),
        weblm: https(52233, "WebLM/index.jps"),
        co_located_https: format!(
            "https://{co_located_destination}[:{REMOTE_PORT}][/{REQUIRED_PATH}]"
        ),
        web_manager: central(format!(
            "https://admin.{domain}:8443/{customer}/WebManagement/WebManagement.html"
        )),
        sysmon_ssa: central(format!("admin.{domain}/{customer}[/{TARGET_IP_OFFICE_IP}]")),
        destination,
        co_located_destination,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            domain: "example.com".into(),
            proxy: "maint.example.com:6443".into(),
            ca_file: "comgate-ca.pem".into(),
            central_management: true,
        }
    }

    fn enabled(system: &SystemRef<'_>) -> Addresses {
        match addresses(&deployment(), system, true) {
            RemoteSupport::Enabled(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    const SECONDARY: SystemRef<'static> = SystemRef {
        customer_id: "12345",
        label: "ipo-2",
        is_primary: false,
        proxy_username: Some("reseller-a"),
    };

    #[test]
    fn secondary_system_gets_the_manuals_forms_filled_in() {
        let a = enabled(&SECONDARY);
        assert_eq!(a.destination, "12345-ipo-2.maint.example.com");
        assert_eq!(
            a.linux_ssh,
            "ssh <user-name>@<external-server-ip-address> -p 22 -oProxyCommand=\"proxytunnel -E --proxy=\"maint.example.com:6443\" --dest='12345-ipo-2.maint.example.com:22' -P 'reseller-a:<proxy-password>' -C '<full-path-to-comgate-ca.pem>'\""
        );
        assert_eq!(
            a.windows_ssh,
            "ssh <user-name>@<external-server-ip-address> -p 22 -oProxyCommand=\"<full-path-to-proxytunnel.exe> -E --proxy=\"maint.example.com:6443\" --dest='12345-ipo-2.maint.example.com:22' -P 'reseller-a:<proxy-password>' -C '<full-path-to-comgate-ca.pem>'\""
        );
        assert_eq!(a.linux_putty_host_name, "12345-ipo-2.maint.example.com");
        assert_eq!(
            a.linux_putty_proxy_command,
            "proxytunnel -E --proxy=\"maint.example.com:6443\" --dest=\"12345-ipo-2.maint.example.com\" -P 'reseller-a:<proxy-password>' -C '<full-path-to-comgate-ca.pem>'"
        );
        assert_eq!(
            a.windows_putty_proxy_command,
            "proxytunnel.exe -E --proxy=\"maint.example.com:6443\" --dest=\"12345-ipo-2.maint.example.com\" -P 'reseller-a:<proxy-password>' -C 'comgate-ca.pem'"
        );
        assert_eq!(
            a.rdp_standalone,
            "<full-path-to-proxytunnel.exe> --standalone=<free-port-on-local-host> -E --proxy=\"maint.example.com:6443\" --dest=\"12345-ipo-2-<co-located-server-ip-address>.maint.example.com:3389\" -P 'reseller-a:<proxy-password>' -C '<full-path-to-comgate-ca.pem>'"
        );
        assert_eq!(
            a.web_control_panel,
            "https://12345-ipo-2.maint.example.com:7071/login"
        );
        assert_eq!(
            a.one_x_portal,
            "https://12345-ipo-2.maint.example.com:9443/onexportal-admin.html"
        );
        assert_eq!(
            a.weblm,
            "https://12345-ipo-2.maint.example.com:52233/WebLM/index.jps"
        );
        assert_eq!(
            a.co_located_https,
            "https://12345-ipo-2-<co-located-server-ip-address>.maint.example.com[:<remote-port>][/<required-path>]"
        );
        assert_eq!(
            a.web_manager.as_deref(),
            Some("https://admin.example.com:8443/12345/WebManagement/WebManagement.html")
        );
        assert_eq!(
            a.sysmon_ssa.as_deref(),
            Some("admin.example.com/12345[/<target-ip-office-ip-address>]")
        );
    }

    #[test]
    fn primary_system_is_reached_without_its_name_except_over_https() {
        let a = enabled(&SystemRef {
            label: "main",
            is_primary: true,
            ..SECONDARY
        });
        assert_eq!(a.destination, "12345.maint.example.com");
        assert_eq!(
            a.co_located_destination,
            "12345-<co-located-server-ip-address>.maint.example.com"
        );
        assert!(a.linux_ssh.contains("--dest='12345.maint.example.com:22'"));
        assert!(a
            .linux_ssh_co_located
            .contains("--dest='12345-<co-located-server-ip-address>.maint.example.com:22'"));
        // The manual's IP Office links always name the system.
        assert_eq!(
            a.web_control_panel,
            "https://12345-main.maint.example.com:7071/login"
        );
    }

    #[test]
    fn remote_access_off_shows_the_manuals_message_only() {
        let got = addresses(&deployment(), &SECONDARY, false);
        assert_eq!(
            got,
            RemoteSupport::Disabled {
                message: "Remote Access is Disabled"
            }
        );
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::json!({"state": "disabled", "message": "Remote Access is Disabled"})
        );
    }

    #[test]
    fn without_central_management_or_proxy_account_those_parts_stay_open() {
        let mut d = deployment();
        d.central_management = false;
        let system = SystemRef {
            proxy_username: None,
            ..SECONDARY
        };
        let RemoteSupport::Enabled(a) = addresses(&d, &system, true) else {
            panic!("enabled")
        };
        assert_eq!((a.web_manager, a.sysmon_ssa), (None, None));
        assert!(a
            .linux_ssh
            .contains("-P '<proxy-username>:<proxy-password>'"));
    }

    #[test]
    fn a_configured_public_address_is_the_proxy_everywhere() {
        let mut d = deployment();
        d.proxy = "gw.example.net:443".into();
        let RemoteSupport::Enabled(a) = addresses(&d, &SECONDARY, true) else {
            panic!("enabled")
        };
        for s in [
            &a.linux_ssh,
            &a.windows_ssh,
            &a.linux_putty_proxy_command,
            &a.windows_putty_proxy_command,
            &a.rdp_standalone,
        ] {
            assert!(s.contains("--proxy=\"gw.example.net:443\""), "{s}");
            assert!(!s.contains("6443"), "{s}");
        }
    }
}
