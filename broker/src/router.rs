//! Which shard runs a request. Sends and pulls run on the shard that stores their queue, when
//! this shard's view says which one that is and nothing broker-wide has to change first; all
//! else runs on shard 0, which owns the metadata and the client tables (and reaches the other
//! shards' stores by calls). A send that lands elsewhere is still correct, only slower: every
//! store operation goes to the queue's owner.

use wire::code::request as req;
use wire::message::topic;
use wire::RemotingCommand;

use crate::server::Broker;

pub fn route(b: &Broker, cmd: &RemotingCommand) -> usize {
    if b.mesh.shards == 1 {
        return 0;
    }
    match cmd.code {
        req::SEND_MESSAGE | req::SEND_MESSAGE_V2 | req::SEND_BATCH_MESSAGE => route_send(b, cmd),
        req::PULL_MESSAGE => route_pull(b, cmd),
        _ => 0,
    }
}

/// The short (V2) or long name of a send header field.
fn field<'a>(cmd: &'a RemotingCommand, short: &str, long: &str) -> Option<&'a str> {
    let fields = &cmd.ext_fields;
    fields.get(short).or_else(|| fields.get(long))
}

fn route_send(b: &Broker, cmd: &RemotingCommand) -> usize {
    let (Some(name), Some(queue_id)) = (field(cmd, "b", "topic"), field(cmd, "e", "queueId")) else { return 0 };
    let Ok(queue_id) = queue_id.parse::<i32>() else { return 0 };
    // Retry topics may turn into DLQ sends, transactions and delays are staged on shard 0.
    if queue_id < 0 || name.starts_with(topic::RETRY_GROUP_TOPIC_PREFIX) {
        return 0;
    }
    if crate::stores::staged_on_shard_0(name, field(cmd, "i", "properties").unwrap_or("")) {
        return 0;
    }
    let view = b.view.borrow();
    match view.topics.get(name) {
        Some(t) if queue_id < t.access.write_queue_nums => view.owner(name, queue_id),
        _ => 0, // unknown topic (auto-creation) or a bad queue: shard 0 answers
    }
}

fn route_pull(b: &Broker, cmd: &RemotingCommand) -> usize {
    let fields = &cmd.ext_fields;
    let (Some(group), Some(name), Some(queue_id)) =
        (fields.get("consumerGroup"), fields.get("topic"), fields.get("queueId"))
    else {
        return 0;
    };
    let Ok(queue_id) = queue_id.parse::<i32>() else { return 0 };
    let view = b.view.borrow();
    // A group seen for the first time is created on shard 0, which then passes the pull on.
    if !view.groups.contains_key(group) {
        return 0;
    }
    view.owner(name, queue_id)
}
