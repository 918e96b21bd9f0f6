//! What several threads must agree on: the directory of nicks and rooms, each room's moderation state and home-shard extras, shards' local memberships, the registry of accounts and registered rooms, the cluster's view of other nodes (with its table of their users); and the compact containers these and the sessions keep per connection (`conn_map`, `nick_table`, `room_list`).

pub mod cluster;
pub mod conn_map;
pub mod directory;
pub mod nick_table;
pub mod registry;
pub mod remote_users;
pub mod room_home;
pub mod room_list;
pub mod room_state;
pub mod rooms;
