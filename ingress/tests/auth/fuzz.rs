//! Random input to `check_message` with a resolver that never answers must not panic.

use proptest::prelude::*;
use tempmx_ingress::auth::{AuthConfig, AuthMode};

use crate::common::{authenticator, config, ip};
use crate::support_dns::{TestDns, Zone};

fn header_like() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just(
            b"DKIM-Signature: v=1; a=ed25519-sha256; d=x.test; s=s; h=from; bh=AA==; b=AA==\r\n"
                .to_vec()
        ),
        Just(b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.test; s=s; b=AA==\r\n".to_vec()),
        Just(b"Authentication-Results: mx.tempmx.test; (\\\r\n".to_vec()),
        Just(b"From: a@\xff\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..80),
    ];
    proptest::collection::vec(field, 0..12).prop_map(|parts| parts.concat())
}

#[test]
fn random_messages_never_panic() {
    let dns = TestDns::start(Zone::new().silent_all());
    let cfg = AuthConfig {
        check_duration_max_ms: 50,
        dns_timeout_ms: 10_000,
        ..config(&dns, AuthMode::Enforce)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let auth = rt.block_on(async { authenticator(&cfg) });
    let sender = rt.block_on(auth.check_sender(ip(2), "h\u{0}", "\u{7f}@\u{ff}"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let input = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        header_like()
    ];
    runner
        .run(&input, |bytes| {
            let check = rt.block_on(auth.check_message(&sender, &bytes));
            prop_assert!(check.header().ends_with(b"\r\n"));
            for r in check.forged_headers() {
                prop_assert!(r.start < r.end && r.end <= bytes.len());
            }
            Ok(())
        })
        .unwrap();
}
