//! The transactional producer (Java's `TransactionMQProducer`): a message is first sent as a
//! half message, which no consumer sees; the local transaction runs; then END_TRANSACTION
//! (oneway) commits or rolls it back. A half message left open (the outcome was unknown, or the
//! producer died before saying) is checked later by the broker with CHECK_TRANSACTION_STATE,
//! which [`TransactionListener::check`] answers.

use std::sync::Arc;

use wire::code::request;
use wire::header::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use wire::message::{properties, sys_flag};
use wire::RemotingCommand;

use crate::error::{ClientError, Result};
use crate::message::{Message, MessageExt};
use crate::producer::{Producer, ProducerConfig, SendResult};
use crate::remoting::ServerRequest;

/// The outcome of a local transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTransactionState {
    CommitMessage,
    RollbackMessage,
    /// Not known yet: the broker asks again after `transactionTimeOut`.
    Unknown,
}

impl LocalTransactionState {
    fn sys_flag(self) -> i32 {
        match self {
            Self::CommitMessage => sys_flag::TRANSACTION_COMMIT_TYPE,
            Self::RollbackMessage => sys_flag::TRANSACTION_ROLLBACK_TYPE,
            Self::Unknown => sys_flag::TRANSACTION_NOT_TYPE,
        }
    }
}

/// The application's side of a transaction.
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction for a half message the broker accepted.
    fn execute(&self, message: &Message, sent: &SendResult) -> LocalTransactionState;
    /// Says how the transaction of a half message left open ended.
    fn check(&self, message: &MessageExt) -> LocalTransactionState;
}

/// What [`TransactionProducer::send_in_transaction`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSendResult {
    pub send: SendResult,
    pub state: LocalTransactionState,
}

/// A producer of transactional messages.
#[derive(Clone)]
pub struct TransactionProducer {
    producer: Producer,
    listener: Arc<dyn TransactionListener>,
}

impl TransactionProducer {
    pub fn start(config: ProducerConfig, listener: Arc<dyn TransactionListener>) -> Result<Self> {
        let producer = Producer::start(config)?;
        let group = producer.group().to_string();
        let (checking, answering) = (listener.clone(), producer.clone());
        producer.instance().register_checker(
            &group,
            Arc::new(move |request: ServerRequest| {
                let (listener, producer) = (checking.clone(), answering.clone());
                tokio::spawn(async move { answer_check(&producer, listener.as_ref(), request).await });
            }),
        );
        Ok(Self { producer, listener })
    }

    /// Sends `message` as a half message, runs the local transaction, and commits or rolls
    /// back as it says (an unknown outcome is left for the broker's check).
    pub async fn send_in_transaction(&self, message: Message) -> Result<TransactionSendResult> {
        if message.properties.contains_key(properties::DELAY_TIME_LEVEL) {
            return Err(ClientError::InvalidMessage("a transactional message cannot be delayed".into()));
        }
        let half = message
            .with_property(properties::TRANSACTION_PREPARED, "true")
            .with_property(properties::PRODUCER_GROUP, self.producer.group());
        let send = self.producer.send(half.clone()).await?;
        let state = self.listener.execute(&half, &send);
        let addr = self.producer.instance().routes.master_addr(&send.queue.broker_name).ok_or_else(|| {
            ClientError::NoRoute {
                topic: send.queue.topic.clone(),
                reason: format!("broker {} has no master", send.queue.broker_name),
            }
        })?;
        let (_, commit_log_offset) = wire::message::decode_offset_msg_id(&send.offset_msg_id).map_err(|e| {
            ClientError::InvalidArgument(format!("the broker's offset id {:?}: {e}", send.offset_msg_id))
        })?;
        let header = EndTransactionRequestHeader {
            producer_group: self.producer.group().into(),
            tran_state_table_offset: send.queue_offset,
            commit_log_offset,
            commit_or_rollback: state.sys_flag(),
            from_transaction_check: Some(false),
            msg_id: send.msg_id.as_str().into(),
            transaction_id: Some(send.msg_id.as_str().into()),
        };
        end_transaction(&self.producer, &addr, header).await?;
        Ok(TransactionSendResult { send, state })
    }

    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    pub async fn shutdown(&self) {
        self.producer.shutdown().await;
    }
}

async fn end_transaction(producer: &Producer, addr: &str, header: EndTransactionRequestHeader) -> Result<()> {
    let cmd = RemotingCommand::request(request::END_TRANSACTION).with_header(&header).mark_oneway();
    producer.instance().remoting.invoke_oneway(addr, cmd).await
}

/// Answers a broker's CHECK_TRANSACTION_STATE with the listener's verdict.
async fn answer_check(producer: &Producer, listener: &dyn TransactionListener, request: ServerRequest) {
    let Ok(header) = request.command.header::<CheckTransactionStateRequestHeader>() else {
        tracing::warn!(broker = %request.addr, "CHECK_TRANSACTION_STATE without a valid header");
        return;
    };
    let Some(stored) =
        wire::message::decode_stored_messages(&request.command.body, false).ok().and_then(|mut m| m.pop())
    else {
        tracing::warn!(broker = %request.addr, "CHECK_TRANSACTION_STATE without a message");
        return;
    };
    let message = match MessageExt::decompressed(stored, "") {
        Ok(message) => message,
        Err(e) => {
            tracing::warn!(broker = %request.addr, error = %e, "CHECK_TRANSACTION_STATE with an undecodable body");
            return;
        }
    };
    let state = listener.check(&message);
    let msg_id = header.msg_id.clone().unwrap_or_else(|| message.msg_id().as_str().into());
    let end = EndTransactionRequestHeader {
        producer_group: producer.group().into(),
        tran_state_table_offset: header.tran_state_table_offset,
        commit_log_offset: header.commit_log_offset,
        commit_or_rollback: state.sys_flag(),
        from_transaction_check: Some(true),
        transaction_id: header.transaction_id.clone().or_else(|| Some(msg_id.clone())),
        msg_id,
    };
    if let Err(e) = end_transaction(producer, &request.addr, end).await {
        tracing::warn!(broker = %request.addr, error = %e, "answer to a transaction check not sent");
    }
}
