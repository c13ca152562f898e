//! `comgate admin` as the contract describes it: errors exit non-zero with a message
//! naming what is wrong, change nothing, and changes apply to the next CONNECT of a
//! running serve.

use anyhow::{ensure, Result};

use crate::support::connect::Creds;
use crate::support::files::echo_roundtrip;
use crate::support::site::{EchoSite, Tenant, CUSTOMER, RESELLER, SYSTEM};
use crate::support::{run, secs, Harness};

/// Runs a command that must fail with a message on stderr containing `mention`.
async fn must_fail(tenant: &Tenant, args: &[&str], mention: &str) -> Result<()> {
    let ran = tenant.gw.admin_raw(args).await?;
    ensure!(
        !ran.success(),
        "`comgate admin {}` succeeded",
        args.join(" ")
    );
    ensure!(
        ran.stderr_text()
            .to_lowercase()
            .contains(&mention.to_lowercase()),
        "`comgate admin {}` failed without naming {mention:?}:\n{}",
        args.join(" "),
        ran.describe()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_refuses_unknown_customer_and_duplicates_and_changes_nothing() {
    run(|h: Harness| async move {
        let EchoSite {
            server,
            tenant,
            agent: _agent,
        } = EchoSite::start(&h, 5).await?;
        let b = Creds::new("acc-b", "pw-B.Zz81x");
        tenant
            .gw
            .proxy_account("reseller-b", &b.user, &b.pass)
            .await?;

        must_fail(
            &tenant,
            &["system", "add", "--customer", "99999", "--name", "x1"],
            "99999",
        )
        .await?;
        // A duplicate customer id, even one that would move the customer to reseller B.
        must_fail(
            &tenant,
            &[
                "customer",
                "add",
                "--id",
                CUSTOMER,
                "--name",
                "Takeover",
                "--reseller",
                "reseller-b",
            ],
            CUSTOMER,
        )
        .await?;
        must_fail(
            &tenant,
            &["system", "add", "--customer", CUSTOMER, "--name", SYSTEM],
            SYSTEM,
        )
        .await?;

        // Nothing changed: A still reaches its customer, B still does not.
        let target = Tenant::colocated(server.addr);
        let ok = tenant.front.open(&target, &tenant.creds).await?;
        echo_roundtrip(ok.stream, ok.early, 1024, secs(20)).await?;
        let r = tenant.front.status_of(&target, Some(&b)).await?;
        ensure!(
            r.status == 403,
            "reseller B after the failed takeover: {}",
            r.summary()
        );

        // A password change made while serve runs applies to the next CONNECT.
        tenant
            .gw
            .proxy_account(RESELLER, &tenant.creds.user, "a-new-Passw0rd")
            .await?;
        let r = tenant.front.status_of(&target, Some(&tenant.creds)).await?;
        ensure!(
            r.status == 407,
            "the old password still works after the change: {}",
            r.summary()
        );
        let new = Creds::new(&tenant.creds.user, "a-new-Passw0rd");
        let ok = tenant.front.open(&target, &new).await?;
        echo_roundtrip(ok.stream, ok.early, 1024, secs(20)).await?;
        Ok(())
    })
    .await;
}
