//! Fuzzes the maintenance-address grammar (`gateway::maint_host`): any
//! request target must either be refused or yield a canonical, lowercase
//! destination with a real port that parses back to itself.
#![no_main]

use gateway::maint_host::{parse_maint_authority, parse_maint_host};
use libfuzzer_sys::fuzz_target;

const DOMAIN: &str = "example.com";

fuzz_target!(|data: &[u8]| {
    let authority = String::from_utf8_lossy(data);
    let Ok(target) = parse_maint_authority(&authority, DOMAIN) else {
        return;
    };
    assert_ne!(target.port, 0, "port 0 accepted from {authority:?}");
    assert!(
        !target.customer.is_empty()
            && target
                .customer
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "customer {:?} from {authority:?}",
        target.customer
    );
    if let Some(system) = &target.system {
        assert!(
            !system.is_empty()
                && system
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "system {system:?} from {authority:?}"
        );
    }
    // Anything accepted is a name under .maint.<DOMAIN>, case aside.
    let host = authority.rsplit_once(':').map_or(&*authority, |(h, _)| h);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    assert!(
        host.ends_with(".maint.example.com"),
        "accepted {authority:?}"
    );
    // The canonical spelling parses back to the same destination.
    let canonical = target.to_authority(DOMAIN);
    assert_eq!(
        parse_maint_authority(&canonical, DOMAIN).as_ref(),
        Ok(&target),
        "{canonical}"
    );
    let host_only =
        parse_maint_host(&host, DOMAIN).expect("host part of an accepted authority parses");
    assert_eq!(host_only.customer, target.customer);
});
