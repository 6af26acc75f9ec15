//! Bans (`PUT`/`DELETE /v1/rooms/{room}/bans/{user}`, `GET /v1/rooms/{room}/bans`, backend
//! credentials): a banned user's sockets in the room close at once with 4003 `banned`, and they
//! are refused there (connect, history, publish, presence) until the ban ends or is lifted;
//! other rooms and other users are untouched.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_e2e::backend::webhook_auth;
use relay_e2e::http::{self, HttpResponse};
use relay_e2e::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn ban_request(
    method: Method,
    room: &str,
    user: &str,
    body: Option<&Value>,
    auth: &ReqAuth,
) -> HttpResponse {
    let path = room_path(room, &format!("bans/{}", encode_segment(user)));
    http::send(method, &path, auth, body, &[]).await
}

async fn bans(room: &str) -> Value {
    let r = http::get(&room_path(room, "bans"), &webhook_auth()).await;
    r.assert_status(200);
    r.json().clone()
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_banned_user_is_closed_and_refused_in_that_room_only_until_lifted() {
    let (room, elsewhere) = (unique_room("e2e:ban"), unique_room("e2e:ban-other"));
    let (target, bystander) = (User::anonymous("banned"), User::anonymous("bystander"));
    let (mut tab1, _) = Client::join_as(&room, &target).await;
    let (mut tab2, _) = Client::join_as(&room, &target).await;
    let (mut other_room, _) = Client::join_as(&elsewhere, &target).await;
    let (mut other_user, _) = Client::join_as(&room, &bystander).await;

    let r = ban_request(Method::PUT, &room, &target.id, None, &webhook_auth()).await;
    r.assert_status(200);
    assert_eq!(
        r.json(),
        &json!({"room": room, "user": target.id, "until": null})
    );
    for tab in [&mut tab1, &mut tab2] {
        let (code, reason) = tab.expect_close(Duration::from_secs(1)).await;
        assert_eq!((code, reason.as_str()), (Some(4003), "banned"));
    }
    other_room.publish_acked("elsewhere", None, &json!(1)).await;
    other_user
        .publish_acked("unaffected", None, &json!(1))
        .await;

    let token = target.token(&["*"]);
    let err = Client::connect(&room, Some(&token), Via::Query, None)
        .await
        .expect_err("a banned user connected");
    err.assert_error(403, "forbidden", "connect").await;
    let auth = ReqAuth::Bearer(token.clone());
    let history = http::history(&room, "", &auth).await;
    history.assert_error(403, "forbidden");
    assert!(history.body.contains("banned"), "{}", history.body);
    http::publish(&room, &auth, &json!({"data": 1}))
        .await
        .assert_error(403, "forbidden");
    http::get(&room_path(&room, "presence"), &auth)
        .await
        .assert_error(403, "forbidden");
    assert_eq!(
        bans(&room).await["bans"],
        json!([{"user": target.id, "until": null}])
    );

    let lifted = ban_request(Method::DELETE, &room, &target.id, None, &webhook_auth()).await;
    lifted.assert_status(200);
    assert_eq!(lifted.json()["lifted"], true);
    let (mut back, _) = Client::join_as(&room, &target).await;
    back.publish_acked("back", None, &json!(1)).await;
    assert_eq!(bans(&room).await["bans"], json!([]));
}

#[tokio::test]
async fn a_ban_with_until_ends_by_itself() {
    let room = unique_room("e2e:ban-until");
    let target = User::anonymous("banned-until");
    let until = now_s() + 2;
    let body = json!({"until": until});
    ban_request(Method::PUT, &room, &target.id, Some(&body), &webhook_auth())
        .await
        .assert_status(200);
    let token = target.token(&[room.as_str()]);
    Client::connect(&room, Some(&token), Via::Query, None)
        .await
        .expect_err("connected while banned")
        .assert_error(403, "forbidden", "connect")
        .await;
    tokio::time::sleep(Duration::from_millis(
        ((until + 1 - now_s()).max(0) * 1000) as u64,
    ))
    .await;
    let (mut c, _) = Client::join_as(&room, &target).await;
    c.publish_acked("after", None, &json!(1)).await;
}

#[tokio::test]
async fn bans_are_for_backends_and_their_bodies_are_checked() {
    let room = unique_room("e2e:ban-auth");
    let target = User::anonymous("ban-auth");
    let user_auth = ReqAuth::Bearer(target.token(&["*"]));
    for auth in [&user_auth, &ReqAuth::None] {
        ban_request(Method::PUT, &room, &target.id, None, auth)
            .await
            .assert_error(401, "unauthorized");
        http::get(&room_path(&room, "bans"), auth)
            .await
            .assert_error(401, "unauthorized");
    }
    for body in [
        json!({"until": now_s() - 1}),
        json!({"until": "soon"}),
        json!({"reason": "x"}),
    ] {
        ban_request(Method::PUT, &room, &target.id, Some(&body), &webhook_auth())
            .await
            .assert_error(400, "bad_request");
    }
    ban_request(Method::POST, &room, &target.id, None, &webhook_auth())
        .await
        .assert_error(405, "method_not_allowed");
    // Nothing of the refused requests was stored.
    assert_eq!(bans(&room).await["bans"], json!([]));
    let (mut c, _) = Client::join_as(&room, &target).await;
    c.publish_acked("never-banned", None, &json!(1)).await;
}
