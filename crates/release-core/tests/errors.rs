//! How an error reads to a program: `{e}` the message, `{e:#}` with its detail lines, `{e:?}` (what a `main`
//! returning `Result` prints) with its kind and exit code, and `exit_code` the documented code.

use release_core::model::error::{exit, Error};

#[test]
fn an_error_says_its_message_its_details_on_demand_and_its_exit_code() {
    let e = Error::not_found("no AMI for 0123456789ab; run `release bake 0123456789ab`").with_details(vec!["line one".into(), "line two".into()]);
    assert_eq!(e.to_string(), "no AMI for 0123456789ab; run `release bake 0123456789ab`");
    assert_eq!(format!("{e:#}"), "no AMI for 0123456789ab; run `release bake 0123456789ab`\n  line one\n  line two");
    assert_eq!(e.exit_code(), exit::NOT_FOUND);
    let debug = format!("{e:?}");
    assert!(debug.starts_with("no AMI for 0123456789ab") && debug.contains(&format!("exit {}", exit::NOT_FOUND)) && debug.ends_with("  line two"), "{debug}");
}
