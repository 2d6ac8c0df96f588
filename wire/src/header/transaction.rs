//! Transactions: END_TRANSACTION and CHECK_TRANSACTION_STATE.

use super::header;
use crate::bytestr::ByteStr;

header! {
    /// END_TRANSACTION request (producer to broker, may be oneway).
    EndTransactionRequestHeader {
        producer_group: ByteStr = "producerGroup",
        tran_state_table_offset: i64 = "tranStateTableOffset",
        commit_log_offset: i64 = "commitLogOffset",
        /// `MessageSysFlag` transaction type: commit (8) or rollback (12), or 0 for unknown.
        commit_or_rollback: i32 = "commitOrRollback",
        from_transaction_check: Option<bool> = "fromTransactionCheck",
        msg_id: ByteStr = "msgId",
        transaction_id: Option<ByteStr> = "transactionId",
    }
}

header! {
    /// CHECK_TRANSACTION_STATE request (broker to producer, oneway).
    CheckTransactionStateRequestHeader {
        tran_state_table_offset: i64 = "tranStateTableOffset",
        commit_log_offset: i64 = "commitLogOffset",
        msg_id: Option<ByteStr> = "msgId",
        transaction_id: Option<ByteStr> = "transactionId",
        offset_msg_id: Option<ByteStr> = "offsetMsgId",
    }
}
