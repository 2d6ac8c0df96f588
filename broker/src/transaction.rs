//! Transactional messages, as Java's `TransactionalMessageService` treats them.
//!
//! A send marked TRAN_MSG is stored as a half message: in RMQ_SYS_TRANS_HALF_TOPIC queue 0,
//! its real topic and queue in REAL_TOPIC / REAL_QID, invisible to consumers. END_TRANSACTION
//! commits it (the message is stored again under its real topic, with the commit type) or rolls
//! it back; either way an op record (body: the half message's queue offset, tag `d`) goes to
//! RMQ_SYS_TRANS_OP_HALF_TOPIC. A checker walks the half queue every
//! `transactionCheckInterval`: a half message older than `transactionTimeOut` with no op record
//! is stored again at the end of the queue with TRANSACTION_CHECK_TIMES raised, and the producer
//! group gets CHECK_TRANSACTION_STATE for the new copy; after `transactionCheckMax` checks it is
//! given up. Progress is the offset of group `CID_RMQ_SYS_TRANS` on the half queue.
//!
//! Unlike Java, a second END_TRANSACTION for a half message already resolved changes nothing
//! (Java would store a committed message twice), and neither does one for a check copy of a
//! transaction resolved meanwhile (the producer's answer came after the check was sent): the
//! unique keys of recently resolved transactions are remembered while the broker runs.

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tracing::{debug, info, warn};
use wire::code::{request as req, response as resp};
use wire::header::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use wire::message::{self, properties, sys_flag, topic, StoredMessage};
use wire::RemotingCommand;

use crate::processor::{error, header, ok, store_error, Answer};
use crate::server::{now_ms, Broker};

/// The group whose offset on the half queue is the checker's progress (Java's name).
pub const CHECK_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// Tag of an op record that removes a half message.
const REMOVE_TAG: &str = "d";
/// Half messages read per call while checking.
const CHECK_BATCH: usize = 32;

/// Unique keys of resolved transactions remembered, newest kept.
const RESOLVED_KEYS_KEPT: usize = 100_000;

/// Half queue offsets that have an op record, at or past the checker's progress; unique keys
/// of transactions resolved lately.
#[derive(Default)]
pub struct Transactions {
    resolved: HashSet<i64>,
    resolved_keys: HashSet<String>,
    key_order: VecDeque<String>,
}

impl Transactions {
    /// Records `key` as resolved; false if it already was.
    fn claim_key(&mut self, key: &str) -> bool {
        if !self.resolved_keys.insert(key.to_owned()) {
            return false;
        }
        self.key_order.push_back(key.to_owned());
        if self.key_order.len() > RESOLVED_KEYS_KEPT {
            if let Some(oldest) = self.key_order.pop_front() {
                self.resolved_keys.remove(&oldest);
            }
        }
        true
    }

    fn is_resolved_key(&self, key: Option<&str>) -> bool {
        key.is_some_and(|k| self.resolved_keys.contains(k))
    }
}

/// Turns a prepared message into a half message (Java's `parseHalfMessageInner`).
pub fn to_half(msg: &mut StoredMessage) {
    let mut props = properties::with(msg.properties.as_str(), properties::REAL_TOPIC, msg.topic.as_str());
    props = properties::with(&props, properties::REAL_QUEUE_ID, &msg.queue_id.to_string());
    msg.properties = props.as_str().into();
    msg.sys_flag = sys_flag::with_transaction_type(msg.sys_flag, sys_flag::TRANSACTION_NOT_TYPE);
    msg.topic = topic::TRANS_HALF_TOPIC.into();
    msg.queue_id = 0;
}

/// Whether a send's properties ask for a transactional (half) message.
pub fn is_prepared(props: &str) -> bool {
    properties::get(props, properties::TRANSACTION_PREPARED).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Loads the op records past the checker's progress.
pub async fn load(b: &Broker) -> Transactions {
    let progress = b.meta.borrow().query_offset(CHECK_GROUP, topic::TRANS_HALF_TOPIC, 0).max(0);
    let mut resolved = HashSet::new();
    let mut offset = b.store.min_offset_in_queue(topic::TRANS_OP_HALF_TOPIC, 0);
    let max = b.store.max_offset_in_queue(topic::TRANS_OP_HALF_TOPIC, 0);
    while offset < max {
        let got = match b.store.get_message(topic::TRANS_OP_HALF_TOPIC, 0, offset, CHECK_BATCH, &|_| true).await {
            Ok(got) if got.next_begin_offset > offset => got,
            Ok(_) => break,
            Err(e) => {
                warn!(error = %e, offset, "transaction op records unreadable; their half messages may be checked again");
                break;
            }
        };
        for record in &got.messages {
            let Some(op) = decode(record) else { continue };
            if let Some(half) = std::str::from_utf8(&op.body).ok().and_then(|s| s.trim().parse::<i64>().ok()) {
                if half >= progress {
                    resolved.insert(half);
                }
            }
        }
        offset = got.next_begin_offset;
    }
    if !resolved.is_empty() {
        info!(resolved = resolved.len(), progress, "transaction op records loaded");
    }
    Transactions { resolved, ..Transactions::default() }
}

fn decode(record: &Bytes) -> Option<StoredMessage> {
    message::decode_stored_messages(record, false).ok().and_then(|mut v| v.pop())
}

/// END_TRANSACTION: commit or roll back a half message. `None` when Java sends no answer (a
/// producer that does not know the outcome).
pub async fn end_transaction(b: &Rc<Broker>, cmd: &RemotingCommand) -> Option<Answer> {
    let h: EndTransactionRequestHeader = match header(cmd) {
        Ok(h) => h,
        Err(e) => return Some(Err(e)),
    };
    let commit = match h.commit_or_rollback {
        sys_flag::TRANSACTION_COMMIT_TYPE => true,
        sys_flag::TRANSACTION_ROLLBACK_TYPE => false,
        kind => {
            debug!(kind, msg_id = h.msg_id.as_str(), from_check = ?h.from_transaction_check, "transaction left open by its producer");
            return None;
        }
    };
    Some(resolve(b, cmd, &h, commit).await)
}

async fn resolve(b: &Rc<Broker>, cmd: &RemotingCommand, h: &EndTransactionRequestHeader, commit: bool) -> Answer {
    let half = match b.look_message(h.commit_log_offset).await.ok().as_ref().and_then(decode) {
        Some(half) if half.topic.as_str() == topic::TRANS_HALF_TOPIC => half,
        _ => return Err(error(cmd, resp::SYSTEM_ERROR, "Find prepared transaction message failed")),
    };
    if half.property(properties::PRODUCER_GROUP) != Some(h.producer_group.as_str()) {
        return Err(error(cmd, resp::SYSTEM_ERROR, "The producer group wrong"));
    }
    if half.queue_offset != h.tran_state_table_offset {
        return Err(error(cmd, resp::SYSTEM_ERROR, "The transaction state table offset wrong"));
    }
    if half.physical_offset != h.commit_log_offset {
        return Err(error(cmd, resp::SYSTEM_ERROR, "The commit log offset wrong"));
    }
    // Claimed before any await, so a check answer racing the producer's own cannot store twice.
    if !b.transactions.borrow_mut().resolved.insert(half.queue_offset) {
        return Ok(ok(cmd));
    }
    let key = half.property(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX).map(str::to_owned);
    // A copy made for a check of a transaction already resolved: only its op record is due.
    let first = key.as_deref().is_none_or(|k| b.transactions.borrow_mut().claim_key(k));
    let outcome = async {
        if commit && first {
            store_committed(b, &half).await?;
        }
        put_op(b, half.queue_offset).await
    }
    .await;
    match outcome {
        Ok(()) => {
            debug!(commit, msg_id = h.msg_id.as_str(), offset = half.queue_offset, "transaction resolved");
            Ok(ok(cmd))
        }
        Err(e) => {
            let mut transactions = b.transactions.borrow_mut();
            transactions.resolved.remove(&half.queue_offset);
            if let Some(k) = key.filter(|_| first) {
                transactions.resolved_keys.remove(&k);
            }
            Err(store_error(cmd, e))
        }
    }
}

/// Stores a committed half message under its real topic and queue (Java's
/// `endMessageTransaction`).
async fn store_committed(b: &Rc<Broker>, half: &StoredMessage) -> Result<(), store::StoreError> {
    let props = half.properties.as_str();
    let (Some(real_topic), Some(real_queue)) = (
        properties::get(props, properties::REAL_TOPIC).map(str::to_owned),
        properties::get(props, properties::REAL_QUEUE_ID).and_then(|q| q.parse::<i32>().ok()),
    ) else {
        return Err(store::StoreError::BadRecord("half message without REAL_TOPIC / REAL_QID".into()));
    };
    let mut props = properties::without(props, properties::REAL_TOPIC);
    props = properties::without(&props, properties::REAL_QUEUE_ID);
    props = properties::without(&props, properties::TRANSACTION_PREPARED);
    let msg = StoredMessage {
        topic: real_topic.as_str().into(),
        queue_id: real_queue,
        properties: props.as_str().into(),
        sys_flag: sys_flag::with_transaction_type(half.sys_flag, sys_flag::TRANSACTION_COMMIT_TYPE),
        prepared_transaction_offset: half.physical_offset,
        store_host: b.store_host,
        queue_offset: 0,
        physical_offset: 0,
        store_timestamp: 0,
        ..half.clone()
    };
    b.put_messages(vec![msg]).await?.durable
}

/// The op record that removes the half message at `half_offset`.
async fn put_op(b: &Broker, half_offset: i64) -> Result<(), store::StoreError> {
    let body = Bytes::from(half_offset.to_string());
    let props = properties::with("", properties::TAGS, REMOVE_TAG);
    let op = StoredMessage {
        topic: topic::TRANS_OP_HALF_TOPIC.into(),
        queue_id: 0,
        body_crc: message::body_crc(&body),
        body,
        properties: props.as_str().into(),
        born_timestamp: now_ms(),
        born_host: b.store_host,
        store_host: b.store_host,
        ..Default::default()
    };
    let put = b.store.put_message(op)?;
    put.durable.wait().await?;
    Ok(())
}

/// The checker: every `transactionCheckInterval`, the half messages left open.
pub async fn check_loop(b: Rc<Broker>) {
    let interval = Duration::from_millis(b.config.borrow().transaction_check_interval.max(10));
    loop {
        glommio::timer::sleep(interval).await;
        if let Err(e) = check_once(&b).await {
            warn!(error = %e, "transaction check stopped early; the next one resumes");
        }
    }
}

async fn check_once(b: &Rc<Broker>) -> Result<(), store::StoreError> {
    let timeout_ms = b.config.borrow().transaction_time_out as i64;
    let max_checks = b.config.borrow().transaction_check_max;
    let mut offset = b.meta.borrow().query_offset(CHECK_GROUP, topic::TRANS_HALF_TOPIC, 0).max(0);
    // Copies stored by this pass are checked by the next one.
    let end = b.store.max_offset_in_queue(topic::TRANS_HALF_TOPIC, 0);
    while offset < end {
        let got = b.store.get_message(topic::TRANS_HALF_TOPIC, 0, offset, CHECK_BATCH, &|_| true).await?;
        if got.next_begin_offset <= offset {
            break; // stored but not yet durable
        }
        for (record, queue_offset) in got.messages.iter().zip(&got.queue_offsets) {
            if b.transactions.borrow_mut().resolved.remove(queue_offset) {
                continue;
            }
            let Some(half) = decode(record) else {
                warn!(offset = queue_offset, "undecodable half message skipped");
                continue;
            };
            if b.transactions.borrow().is_resolved_key(half.property(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)) {
                continue; // a check copy whose transaction was resolved meanwhile
            }
            if now_ms() - half.store_timestamp < immunity_ms(&half, timeout_ms) {
                // Later ones are younger still: stop here, resume here next time.
                return advance(b, *queue_offset);
            }
            let checks = half.property(properties::TRANSACTION_CHECK_TIMES).and_then(|n| n.parse::<u32>().ok());
            let checks = checks.unwrap_or(0);
            if checks >= max_checks {
                warn!(
                    msg_id = half.property(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX).unwrap_or("-"),
                    checks, "half message given up after transactionCheckMax checks"
                );
                continue;
            }
            check_again(b, half, checks + 1).await?;
        }
        offset = got.next_begin_offset;
        advance(b, offset)?;
    }
    Ok(())
}

/// `CHECK_IMMUNITY_TIME_IN_SECONDS` lets a producer ask for a longer first wait.
fn immunity_ms(half: &StoredMessage, timeout_ms: i64) -> i64 {
    half.property("CHECK_IMMUNITY_TIME_IN_SECONDS")
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(timeout_ms, |secs| (secs * 1000).max(timeout_ms))
}

fn advance(b: &Broker, offset: i64) -> Result<(), store::StoreError> {
    b.meta.borrow_mut().commit_offset(CHECK_GROUP, topic::TRANS_HALF_TOPIC, 0, offset);
    b.offsets_dirty.set(true);
    Ok(())
}

/// Stores the half message again with `checks` recorded, and asks a producer of its group about
/// the copy.
async fn check_again(b: &Rc<Broker>, half: StoredMessage, checks: u32) -> Result<(), store::StoreError> {
    let props = properties::with(half.properties.as_str(), properties::TRANSACTION_CHECK_TIMES, &checks.to_string());
    let copy = StoredMessage {
        properties: props.as_str().into(),
        queue_offset: 0,
        physical_offset: 0,
        store_timestamp: 0,
        ..half
    };
    let put = b.store.put_message(copy.clone())?;
    let stored = put.durable.wait().await?;
    let copy = StoredMessage {
        queue_offset: put.queue_offset,
        physical_offset: stored.physical_offset,
        store_timestamp: stored.store_timestamp,
        ..copy
    };
    let group = copy.property(properties::PRODUCER_GROUP).unwrap_or_default().to_owned();
    let conn = {
        let clients = b.clients.borrow();
        let ids = clients.producers.get(&group).map(|c| c.keys().copied().collect::<Vec<_>>()).unwrap_or_default();
        let conns = b.conns.borrow();
        ids.iter().find_map(|id| conns.get(id).cloned())
    };
    let Some(conn) = conn else {
        debug!(group, "no producer of the group connected to check a half message");
        return Ok(());
    };
    let unique = copy.property(properties::UNIQ_CLIENT_MESSAGE_ID_KEYIDX).map(|s| s.to_owned());
    let header = CheckTransactionStateRequestHeader {
        tran_state_table_offset: copy.queue_offset,
        commit_log_offset: copy.physical_offset,
        msg_id: unique.as_deref().map(Into::into),
        transaction_id: unique.as_deref().map(Into::into),
        offset_msg_id: Some(message::offset_msg_id(b.store_host, copy.physical_offset).as_str().into()),
    };
    // The producer sees the message as it sent it: real topic and queue.
    let props = copy.properties.as_str();
    let shown = StoredMessage {
        topic: properties::get(props, properties::REAL_TOPIC).unwrap_or(topic::TRANS_HALF_TOPIC).into(),
        queue_id: properties::get(props, properties::REAL_QUEUE_ID).and_then(|q| q.parse().ok()).unwrap_or(0),
        ..copy
    };
    let mut body = BytesMut::new();
    shown.encode(&mut body).map_err(|e| store::StoreError::BadRecord(e.to_string()))?;
    let request = RemotingCommand::request(req::CHECK_TRANSACTION_STATE)
        .with_header(&header)
        .with_body(body.freeze())
        .mark_oneway();
    b.send_request(&conn, request);
    debug!(group, checks, offset = header.tran_state_table_offset, "transaction state checked");
    Ok(())
}
