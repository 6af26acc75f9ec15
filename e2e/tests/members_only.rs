//! Members-only rooms (`MEMBERS_ONLY_PREFIXES`): there a user needs both a grant in their token
//! and a place on the room's members list to connect, read history or publish; a member
//! removed by `PUT /v1/rooms/{room}/members` loses their sockets in the room (4003).

use std::time::Duration;

use relay_e2e::backend::set_members;
use relay_e2e::http;
use relay_e2e::*;
use serde_json::json;

fn private_room() -> String {
    unique_room(&format!("{}dialog", members_only_prefix()))
}

#[tokio::test]
async fn a_grant_without_membership_is_refused_everywhere() {
    let room = private_room();
    let member = User::new("member", "Member", "customer");
    let outsider = User::new("outsider", "Outsider", "manager");
    set_members(&room, &[member.id.as_str()]).await;
    // The outsider's token grants every room of the prefix, as a `dialog:*` grant would.
    let grant = format!("{}*", members_only_prefix());
    let token = outsider.token(&[grant.as_str()]);

    let err = Client::connect(&room, Some(&token), Via::Query, None)
        .await
        .expect_err("an outsider connected to a members-only room");
    err.assert_error(403, "forbidden", "connect").await;
    let history = http::history(&room, "", &ReqAuth::Bearer(token.clone())).await;
    history.assert_error(403, "forbidden");
    assert!(history.body.contains("not a member"), "{}", history.body);
    let publish = http::publish(&room, &ReqAuth::Bearer(token.clone()), &json!({"data": 1})).await;
    publish.assert_error(403, "forbidden");
    // Nor may the outsider see who is in the room.
    let presence = http::get(&room_path(&room, "presence"), &ReqAuth::Bearer(token)).await;
    presence.assert_error(403, "forbidden");

    // The member with the same kind of grant gets in, reads and publishes.
    let member_token = member.token(&[grant.as_str()]);
    let (mut c, _) = Client::join(&room, &member_token).await;
    c.publish_acked("m1", None, &json!("hello")).await;
    http::history(&room, "", &ReqAuth::Bearer(member_token.clone()))
        .await
        .assert_status(200);
    let presence = http::get(
        &room_path(&room, "presence"),
        &ReqAuth::Bearer(member_token),
    )
    .await;
    presence.assert_status(200);
    // An admin lists any room.
    let listed = http::get(
        &room_path(&room, "presence"),
        &relay_e2e::backend::admin_auth(),
    )
    .await;
    listed.assert_status(200);
}

#[tokio::test]
async fn a_removed_member_is_closed_with_4003_and_kept_out() {
    let room = private_room();
    let (stays, leaves) = (User::anonymous("stays"), User::anonymous("leaves"));
    // The answer lists members by id: "leaves-..." before "stays-...".
    set_members(&room, &[leaves.id.as_str(), stays.id.as_str()]).await;
    let (mut staying, _) = Client::join_as(&room, &stays).await;
    let (mut leaving, _) = Client::join_as(&room, &leaves).await;
    let (mut leaving_tab, _) = Client::join_as(&room, &leaves).await;

    set_members(&room, &[stays.id.as_str()]).await;
    for c in [&mut leaving, &mut leaving_tab] {
        let (code, reason) = c.expect_close(Duration::from_secs(1)).await;
        assert_eq!(code, Some(4003), "{reason}");
        assert_eq!(reason, "removed from the room");
    }
    Client::connect(
        &room,
        Some(&leaves.token(&[room.as_str()])),
        Via::Query,
        None,
    )
    .await
    .expect_err("a removed member connected again")
    .assert_error(403, "forbidden", "reconnect")
    .await;
    // The remaining member is untouched.
    staying.publish_acked("still-here", None, &json!(1)).await;
}

#[tokio::test]
async fn rooms_outside_the_prefixes_ignore_membership() {
    let room = unique_room("e2e:open-dialog");
    let (listed, unlisted) = (User::anonymous("listed"), User::anonymous("unlisted"));
    set_members(&room, &[listed.id.as_str()]).await;
    let (mut c, _) = Client::join_as(&room, &unlisted).await;
    c.publish_acked("open", None, &json!(1)).await;
    set_members(&room, &[]).await;
    // Emptying the list closes nothing here: the socket still publishes.
    c.publish_acked("still-open", None, &json!(2)).await;
}
