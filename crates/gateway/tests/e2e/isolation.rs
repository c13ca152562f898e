//! Tenant isolation: another reseller's account cannot reach, or even tell apart, a
//! customer that is not its own; a distributor's account reaches its resellers'
//! customers.

use anyhow::{ensure, Result};

use crate::support::comgate::Agent;
use crate::support::connect::{Creds, Response};
use crate::support::files::echo_roundtrip;
use crate::support::maint_name;
use crate::support::site::{Tenant, CUSTOMER, DISTRIBUTOR, SYSTEM};
use crate::support::targets::{echo, lo};
use crate::support::{run, secs, Harness};

/// Two refusals must be indistinguishable: same status line, same body.
fn same_refusal(form: &str, got: &Response, reference: &Response) -> Result<()> {
    ensure!(
        got.status == 403,
        "{form}: expected 403, got {}",
        got.summary()
    );
    ensure!(
        got.status_line == reference.status_line && got.body == reference.body,
        "{form}: the refusal differs from the one for a customer that does not exist\n  \
         this one:    {}\n  nonexistent: {}",
        got.summary(),
        reference.summary()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reseller_b_gets_same_403_as_unknown_customer_for_every_address_of_reseller_a() {
    run(|h: Harness| async move {
        let server = echo(lo(5), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        // A secondary system that stays offline: B must not learn that it is offline.
        gw.system(CUSTOMER, "sec1", false).await?;
        let _agent = Agent::start(gw, &tenant.agent_config().tunnel("RDP", server.addr)).await?;
        // Reseller B, with a customer of its own.
        let b = Creds::new("acc-b", "pw-B.Zz81x");
        gw.proxy_account("reseller-b", &b.user, &b.pass).await?;
        gw.customer("67890", "Other Clinic", "reseller-b", None)
            .await?;

        let colocated = Tenant::colocated(server.addr);
        let front = &tenant.front;
        // Sanity: A's own account gets through to the same address.
        let ok = front.open(&colocated, &tenant.creds).await?;
        echo_roundtrip(ok.stream, ok.early, 4096, secs(20)).await?;

        let reference = front
            .status_of(&format!("{}:22", maint_name("99999", None, None)), Some(&b))
            .await?;
        ensure!(
            reference.status == 403,
            "unknown customer: {}",
            reference.summary()
        );
        let unknown_forms = [
            format!("{}:22", maint_name("99999", Some(SYSTEM), None)),
            format!("{}:22", maint_name(CUSTOMER, Some("nosuchsystem"), None)),
            format!(
                "{}:{}",
                maint_name("99999", Some(SYSTEM), Some("127.0.0.5")),
                server.port()
            ),
        ];
        for form in &unknown_forms {
            same_refusal(form, &front.status_of(form, Some(&b)).await?, &reference)?;
        }
        let a_forms = [
            format!("{}:22", maint_name(CUSTOMER, None, None)),
            maint_name(CUSTOMER, None, None),
            format!("{}:22", maint_name(CUSTOMER, Some(SYSTEM), None)),
            format!("{}:443", maint_name(CUSTOMER, Some(SYSTEM), None)),
            format!("{}:3389", maint_name(CUSTOMER, Some(SYSTEM), None)),
            format!("{}:22", maint_name(CUSTOMER, Some("sec1"), None)),
            colocated.clone(),
            format!(
                "{}:{}",
                maint_name(CUSTOMER, Some("sec1"), Some("127.0.0.5")),
                server.port()
            ),
            format!(
                "{}:22",
                maint_name(CUSTOMER, Some(SYSTEM), None).to_uppercase()
            ),
        ];
        for form in &a_forms {
            same_refusal(form, &front.status_of(form, Some(&b)).await?, &reference)?;
        }
        ensure!(
            server.accepted() == 1,
            "the co-located server was dialed {} times (only A's sanity check may reach it)",
            server.accepted()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributor_account_reaches_its_resellers_customers() {
    run(|h: Harness| async move {
        let server_a = echo(lo(5), 0).await?;
        let server_c = echo(lo(6), 0).await?;
        let tenant = Tenant::start(&h).await?;
        let gw = &tenant.gw;
        let _agent_a =
            Agent::start(gw, &tenant.agent_config().tunnel("RDP", server_a.addr)).await?;
        // A second reseller under the same distributor, with its own customer and site.
        gw.customer(
            "55555",
            "Second Reseller Customer",
            "reseller-c",
            Some(DISTRIBUTOR),
        )
        .await?;
        let secret_c = gw.system("55555", "main", true).await?;
        let cfg_c = crate::support::comgate::AgentConfig::new("55555", "main", &secret_c)
            .tunnel("RDP", server_c.addr);
        let _agent_c = Agent::start(gw, &cfg_c).await?;
        // The distributor's account is added while serve runs.
        let d = Creds::new("acc-dist", "pw-D.q4Lm2");
        gw.proxy_account(DISTRIBUTOR, &d.user, &d.pass).await?;

        let via_a = tenant
            .front
            .open(&Tenant::colocated(server_a.addr), &d)
            .await?;
        echo_roundtrip(via_a.stream, via_a.early, 64 * 1024, secs(20)).await?;
        let target_c = format!(
            "{}:{}",
            maint_name("55555", Some("main"), Some("127.0.0.6")),
            server_c.port()
        );
        let via_c = tenant.front.open(&target_c, &d).await?;
        echo_roundtrip(via_c.stream, via_c.early, 64 * 1024, secs(20)).await?;
        // The primary-system form works for the distributor as well.
        let primary = format!(
            "{}:{}",
            maint_name("55555", None, Some("127.0.0.6")),
            server_c.port()
        );
        let via_primary = tenant.front.open(&primary, &d).await?;
        echo_roundtrip(via_primary.stream, via_primary.early, 1024, secs(20)).await?;
        // Reseller A's account still cannot reach reseller C's customer.
        let refused = tenant
            .front
            .status_of(&target_c, Some(&tenant.creds))
            .await?;
        ensure!(
            refused.status == 403,
            "reseller A reached reseller C's customer: {}",
            refused.summary()
        );
        Ok(())
    })
    .await;
}
