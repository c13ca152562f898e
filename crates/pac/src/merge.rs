//! Adding comgate's rule to a PAC the partner's IT already uses.
//!
//! The manual's way is to paste our `if` into their file by hand. Here the
//! existing source is kept verbatim, wrapped in a function so that its
//! globals cannot clash with ours:
//!
//! ```text
//! var __comgate_existing_FindProxyForURL = (function () {
//! <existing source>
//! ;var FindProxyForURL;
//! return FindProxyForURL;
//! }).call(this);
//! function FindProxyForURL(url, host) {
//!   <our rule>
//!   return __comgate_existing_FindProxyForURL(url, host);
//! }
//! ```
//!
//! The trailing `var FindProxyForURL;` is hoisted to the top of the wrapper,
//! so all three ways PACs define the function bind inside it: a function
//! declaration, `var FindProxyForURL = function ...`, and a bare assignment
//! `FindProxyForURL = function ...` (which would otherwise overwrite ours
//! globally). Placing it last keeps a leading `"use strict"` a directive.
//! The wrapper is called with the global `this`, so code that reads globals
//! through `this` still finds them.
//!
//! Every decision of the existing PAC is kept: for a name outside
//! `.maint.<domain>` the merged PAC returns whatever the existing function
//! returns. [`merge`] checks its result with the evaluator before handing it
//! out.

use crate::engine::{Options, Pac};
use crate::error::PacError;
use crate::generate::MaintRule;

/// The name the existing `FindProxyForURL` lives on under in a merged PAC.
pub const EXISTING_NAME: &str = "__comgate_existing_FindProxyForURL";

/// The merged PAC: `existing` keeps every decision it makes, and names under
/// `.maint.<domain>` go to comgate. Fails when `existing` does not load or
/// define `FindProxyForURL` (evaluated with `options`), or when the merged
/// file does not route a maintenance name to comgate.
pub fn merge(existing: &str, rule: &MaintRule, options: Options) -> Result<String, PacError> {
    let existing = existing.strip_prefix('\u{feff}').unwrap_or(existing);
    // The existing file must work on its own first: its own errors are
    // clearer than the same errors inside the wrapper.
    Pac::load(existing, options.clone())?;
    let merged = format!(
        "// proxy.pac merged by comgate: the existing PAC below keeps every decision\n\
         // it makes; only maintenance names under {suffix} go to comgate first.\n\
         var {EXISTING_NAME} = (function () {{\n\
         {existing}\n\
         ;var FindProxyForURL;\n\
         return FindProxyForURL;\n\
         }}).call(this);\n\
         \n\
         function FindProxyForURL(url, host) {{\n\
         {rule}  return {EXISTING_NAME}(url, host);\n\
         }}\n",
        suffix = rule.suffix(),
        rule = rule.js_statements("  "),
    );
    check(&merged, rule, options)?;
    Ok(merged)
}

fn check(merged: &str, rule: &MaintRule, options: Options) -> Result<(), PacError> {
    let mut pac = Pac::load(merged, options)
        .map_err(|e| PacError::Merge(format!("the merged PAC does not load: {e}")))?;
    let probe = format!("12345{}", rule.suffix());
    let answer = pac
        .find_proxy(&format!("https://{probe}/"), &probe)
        .map_err(|e| PacError::Merge(format!("the merged PAC fails for {probe}: {e}")))?;
    if answer.raw != rule.answer() {
        return Err(PacError::Merge(format!(
            "the existing PAC replaces FindProxyForURL in a way comgate cannot wrap \
             ({probe} gave {:?})",
            answer.raw
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> MaintRule {
        MaintRule::new("example.com", "maint.example.com:6443").unwrap()
    }

    fn answer(source: &str, url: &str) -> String {
        crate::find_proxy_for_url(source, url, Options::default())
            .unwrap()
            .raw
    }

    #[test]
    fn each_way_of_defining_find_proxy_is_wrapped() {
        for existing in [
            "function FindProxyForURL(url, host) { return 'PROXY corp:3128'; }",
            "var FindProxyForURL = function (url, host) { return 'PROXY corp:3128'; };",
            "FindProxyForURL = function (url, host) { return 'PROXY corp:3128'; }",
            "\"use strict\";\nvar FindProxyForURL = (url, host) => 'PROXY corp:3128'; // no newline",
        ] {
            let merged = merge(existing, &rule(), Options::default()).unwrap();
            assert_eq!(answer(&merged, "https://www.example.org/"), "PROXY corp:3128", "{existing}");
            assert_eq!(
                answer(&merged, "https://12345.maint.example.com/"),
                "HTTPS maint.example.com:6443",
                "{existing}"
            );
        }
    }

    #[test]
    fn globals_of_the_existing_pac_stay_inside_it() {
        let existing = "var proxy = 'PROXY corp:3128';\n\
                        function dnsDomainIs(h, d) { return true; }\n\
                        function FindProxyForURL(url, host) { return dnsDomainIs(host, 'x') ? proxy : 'DIRECT'; }";
        let merged = merge(existing, &rule(), Options::default()).unwrap();
        assert_eq!(answer(&merged, "http://a.test/"), "PROXY corp:3128");
        assert_eq!(
            answer(&merged, "https://1-s.maint.example.com/"),
            "HTTPS maint.example.com:6443"
        );
    }

    #[test]
    fn a_broken_existing_pac_is_refused_with_its_own_error() {
        let err = merge(
            "function FindProxyForURL(url, host) {\n  return 'DIRECT' +;\n}",
            &rule(),
            Options::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, PacError::Syntax { line: Some(2), .. }),
            "{err}"
        );
        let err = merge("var x = 1;", &rule(), Options::default()).unwrap_err();
        assert!(matches!(err, PacError::NoFindProxyForURL), "{err}");
    }

    #[test]
    fn a_pac_that_overwrites_the_global_some_other_way_is_refused() {
        let existing = "function FindProxyForURL(u, h) { return 'DIRECT'; }\n\
                        this.FindProxyForURL = function (u, h) { return 'PROXY other:1'; };";
        let err = merge(existing, &rule(), Options::default()).unwrap_err();
        assert!(matches!(err, PacError::Merge(_)), "{err}");
    }
}
