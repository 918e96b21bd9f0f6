//! Rooms: joining several, current room, leave, /who, /rooms, /topic, nick changes.

use crate::common::TestServer;

#[test]
fn messages_go_to_the_current_room_only() {
    let server = TestServer::start_with(|c| c.workers = 3);
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    let mut c = server.client_named("carol");
    a.join("rust");
    b.join("rust");
    a.send("in rust");
    assert_eq!(b.expect("MSG "), "MSG rust alice in rust");
    c.expect_quiet();
    // Back to lobby: alice is still in both; lobby now gets her lines.
    a.join("lobby");
    a.send("in lobby");
    assert_eq!(c.expect("MSG "), "MSG lobby alice in lobby");
    // bob's current room is rust, but he is still a member of lobby.
    assert_eq!(b.expect("MSG "), "MSG lobby alice in lobby");
}

#[test]
fn join_and_leave_are_announced_and_who_lists_members() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    a.send("/join #Rust");
    a.expect("OK joined rust 1");
    b.join("rust");
    assert_eq!(a.expect("EVENT rust"), "EVENT rust join bob");
    a.send("/who");
    // The first member of a room is its operator.
    assert_eq!(a.expect("OK who"), "OK who rust @alice bob");
    a.send("/rooms");
    assert_eq!(a.expect("OK rooms"), "OK rooms lobby:2 rust:2");
    b.send("/leave rust");
    assert_eq!(b.expect("OK left"), "OK left rust");
    assert_eq!(a.expect("EVENT rust"), "EVENT rust leave bob");
    // bob's current room fell back to lobby.
    b.send("after leaving");
    assert_eq!(a.expect("MSG "), "MSG lobby bob after leaving");
    b.send("/leave rust");
    assert_eq!(b.expect("ERR "), "ERR not-in-room you are not in rust");
}

#[test]
fn empty_rooms_disappear() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    for i in 0..10 {
        a.join(&format!("r{i}"));
    }
    for i in 0..10 {
        a.send(&format!("/leave r{i}"));
        a.expect("OK left");
    }
    a.send("/rooms");
    assert_eq!(a.expect("OK rooms"), "OK rooms lobby:1");
    a.send("/who r3");
    assert_eq!(a.expect("ERR "), "ERR no-such-room room r3 has no members");
}

#[test]
fn leaving_every_room_means_no_room_to_talk_in() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    a.send("/leave");
    a.expect("OK left lobby");
    a.send("anyone?");
    assert_eq!(
        a.expect("ERR "),
        "ERR no-room you are in no room; /join one first"
    );
}

#[test]
fn topic_is_shown_and_announced() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client_named("bob");
    a.join("den");
    b.join("den");
    a.send("/topic");
    assert_eq!(a.expect("OK topic"), "OK topic den");
    a.send("/topic edge triggers");
    assert_eq!(
        a.expect("EVENT den topic"),
        "EVENT den topic alice edge triggers"
    );
    assert_eq!(
        b.expect("EVENT den topic"),
        "EVENT den topic alice edge triggers"
    );
    b.send("/topic");
    assert_eq!(b.expect("OK topic"), "OK topic den edge triggers");
    // The lobby belongs to the server: nobody is its operator, so under +t nobody
    // sets its topic.
    b.send("/join lobby");
    b.expect("OK joined lobby");
    b.send("/topic mine now");
    assert!(b.expect("ERR ").starts_with("ERR not-operator"));
}

#[test]
fn nicks_are_unique_case_insensitively_and_changes_are_announced() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    let mut b = server.client();
    b.send("/nick ALICE");
    assert_eq!(b.expect("ERR "), "ERR nick-taken ALICE is already taken");
    b.send("/nick 9bad");
    assert!(b.expect("ERR ").starts_with("ERR bad-nick "));
    let old = b.nick.clone();
    b.set_nick("bob");
    assert_eq!(
        a.expect("EVENT lobby nick"),
        format!("EVENT lobby nick {old} bob")
    );
    // alice may change the case of her own nick.
    a.set_nick("Alice");
    a.send("x");
    assert_eq!(b.expect("MSG "), "MSG lobby Alice x");
}

#[test]
fn room_limit_per_connection() {
    let server = TestServer::start();
    let mut a = server.client_named("alice");
    // lobby + 31 more = 32 rooms.
    for i in 0..31 {
        a.join(&format!("r{i}"));
    }
    a.send("/join one-too-many");
    assert!(a.expect("ERR ").starts_with("ERR too-many-rooms "));
}
