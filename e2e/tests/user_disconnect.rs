//! `POST /v1/users/{user}/disconnect` (backend credentials, body `{"reason"?}`): every socket of
//! the user, in every room, closes within 2 s with 4003 and the reason; nobody else's does.

use std::time::Duration;

use relay_e2e::backend::webhook_auth;
use relay_e2e::http::{self, HttpResponse};
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

async fn disconnect(user: &str, body: Option<&Value>, auth: &ReqAuth) -> HttpResponse {
    let path = format!("/v1/users/{}/disconnect", encode_segment(user));
    http::send(Method::POST, &path, auth, body, &[]).await
}

#[tokio::test]
async fn every_socket_of_the_user_closes_with_the_reason_and_only_theirs() {
    let (room_a, room_b) = (unique_room("e2e:kick-a"), unique_room("e2e:kick-b"));
    let target = User::anonymous("kicked");
    let bystander = User::anonymous("stays");
    let (mut in_a, _) = Client::join_as(&room_a, &target).await;
    let (mut in_b, _) = Client::join_as(&room_b, &target).await;
    let (mut other, _) = Client::join_as(&room_a, &bystander).await;

    // Right after the connects: the rooms may not have reported to the directory yet.
    let started = Instant::now();
    let r = disconnect(
        &target.id,
        Some(&json!({"reason": "account suspended"})),
        &webhook_auth(),
    )
    .await;
    r.assert_status(200);
    assert_eq!(r.json()["user"], target.id.as_str());
    for c in [&mut in_a, &mut in_b] {
        let (code, reason) = c.expect_close(Duration::from_secs(2)).await;
        assert_eq!((code, reason.as_str()), (Some(4003), "account suspended"));
    }
    assert!(
        started.elapsed() <= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    other.publish_acked("still-here", None, &json!(1)).await;
}

#[tokio::test]
async fn the_reason_is_optional_and_the_route_is_for_backends_only() {
    let room = unique_room("e2e:kick-default");
    let target = User::anonymous("kicked-default");
    let (mut c, _) = Client::join_as(&room, &target).await;

    let user_token = ReqAuth::Bearer(target.token(&["*"]));
    disconnect(&target.id, None, &user_token)
        .await
        .assert_error(401, "unauthorized");
    disconnect(&target.id, None, &ReqAuth::None)
        .await
        .assert_error(401, "unauthorized");
    let long = "x".repeat(124);
    disconnect(&target.id, Some(&json!({"reason": long})), &webhook_auth())
        .await
        .assert_error(400, "bad_request");
    c.publish_acked("not-yet", None, &json!(1)).await;

    disconnect(&target.id, None, &webhook_auth())
        .await
        .assert_status(200);
    let (code, reason) = c.expect_close(Duration::from_secs(2)).await;
    assert_eq!((code, reason.as_str()), (Some(4003), "disconnected"));
}
