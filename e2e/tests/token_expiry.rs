//! A socket whose token expires is closed with 4001 `token expired` even when it sends
//! nothing: the room's alarm watches the earliest expiry (plus the relay's clock leeway).

use std::time::Duration;

use relay_e2e::*;
use serde_json::json;

/// The relay's default `JWT_LEEWAY_SECS`: tokens stay accepted this long past `exp`.
const LEEWAY_SECS: u64 = 30;

#[tokio::test]
async fn an_idle_socket_is_closed_when_its_token_expires() {
    let room = unique_room("e2e:expiry");
    let short = User::anonymous("short");
    let long = User::anonymous("long");
    let short_token = short.builder().rooms([room.as_str()]).exp_in(2).mint();
    let (mut idle, _) = Client::join(&room, &short_token).await;
    let (mut other, _) = Client::join_as(&room, &long).await;
    // A publish brings the room's one alarm forward to its archive write; once that has run,
    // the alarm must be set for the expiry again.
    idle.publish_acked("before-idle", None, &json!(0)).await;

    let (code, reason) = idle
        .expect_close(Duration::from_secs(2 + LEEWAY_SECS + 10))
        .await;
    assert_eq!(code, Some(4001), "{reason}");
    assert_eq!(reason, "token expired");
    // The connection with a valid token stays.
    other.publish_acked("after", None, &json!(1)).await;
}
