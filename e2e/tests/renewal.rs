//! In-band renewal: `{"type":"auth","token"}` replaces a connection's token without a
//! reconnect when the new token is valid, is the same user's and still grants the room
//! (answer `{"type":"auth","exp"}`); anything else is an `error` frame and the old token
//! stays. A renewed connection outlives its first token; one that was not renewed is closed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_e2e::*;
use serde_json::{json, Value};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as i64
}

async fn renew(c: &mut Client, token: &str) -> Value {
    c.send_json(&json!({"type": "auth", "token": token})).await;
    c.recv_ignoring(&["presence", "typing", "read"]).await
}

#[tokio::test]
async fn a_renewed_connection_outlives_its_first_token() {
    let room = unique_room("e2e:renew");
    let user = User::anonymous("renew");
    let short = user.builder().rooms([room.as_str()]).exp_in(2).mint();
    let (mut renewed, _) = Client::join(&room, &short).await;
    let (mut not_renewed, _) = Client::join(&room, &short).await;

    let before = unix_now();
    let longer = user.builder().rooms([room.as_str()]).exp_in(3600).mint();
    let answer = renew(&mut renewed, &longer).await;
    assert_eq!(answer["type"], "auth", "{answer}");
    let exp = answer["exp"].as_i64().expect("exp");
    assert!(
        (before + 3600..=unix_now() + 3600).contains(&exp),
        "exp {exp} is not the new token's"
    );

    // The first token's time (plus the relay's 30 s leeway) runs out for the other socket.
    let (code, reason) = not_renewed.expect_close(Duration::from_secs(45)).await;
    assert_eq!((code, reason.as_str()), (Some(4001), "token expired"));
    renewed.publish_acked("still-here", None, &json!(1)).await;
}

#[tokio::test]
async fn a_refused_renewal_is_an_error_and_the_old_token_stays() {
    let room = unique_room("e2e:renew-refused");
    let user = User::anonymous("keeps");
    let (mut c, _) = Client::join_as(&room, &user).await;
    let cases = [
        (
            "another user's token",
            User::anonymous("other").token(&[room.as_str()]),
            "unauthorized",
        ),
        (
            "a token without the room",
            user.token(&["elsewhere:*"]),
            "forbidden",
        ),
        (
            "an expired token",
            user.builder().rooms([room.as_str()]).exp_in(-3600).mint(),
            "unauthorized",
        ),
        ("not a token", "not.a.token".to_string(), "unauthorized"),
    ];
    for (what, token, code) in cases {
        let answer = renew(&mut c, &token).await;
        assert_eq!(answer["type"], "error", "{what}: {answer}");
        assert_eq!(answer["code"], code, "{what}: {answer}");
    }
    // Still connected with the old token.
    c.publish_acked("after-refusals", None, &json!(1)).await;
}
