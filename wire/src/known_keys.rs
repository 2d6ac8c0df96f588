//! Header field names known at compile time.
//!
//! Decoding a key that is one of these yields a `ByteStr` over static memory instead of a slice
//! of the frame, so the key costs no reference count on decode or drop. A SEND_MESSAGE_V2 header
//! has 14 single-letter keys; with every key interned, a decode + encode drops 28 atomic
//! operations (measured with `cargo bench -p wire --bench codec`).

use crate::bytestr::ByteStr;

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyz";

/// Every multi-letter key a typed header declares, ordered by length and then bytes for binary
/// search: most probes then compare two lengths, not two strings (a bytewise order spent 7 % of
/// the bench's CPU in `memcmp` on response headers).
const NAMES: &[&str] = &[
    "key",
    "flag",
    "perm",
    "batch",
    "bname",
    "count",
    "group",
    "index",
    "msgId",
    "order",
    "topic",
    "value",
    "maxNum",
    "offset",
    "changed",
    "cluster",
    "isForce",
    "isOrder",
    "offline",
    "queueId",
    "sysFlag",
    "version",
    "TRACE_ON",
    "brokerId",
    "clientID",
    "clientId",
    "srcGroup",
    "statsKey",
    "unitMode",
    "bodyCrc32",
    "destGroup",
    "groupName",
    "maxOffset",
    "minOffset",
    "namespace",
    "statsName",
    "timestamp",
    "MSG_REGION",
    "brokerAddr",
    "brokerName",
    "clientAddr",
    "compressed",
    "delayLevel",
    "masterAddr",
    "maxMsgNums",
    "properties",
    "subVersion",
    "clusterName",
    "maxMsgBytes",
    "offsetMsgId",
    "originMsgId",
    "originTopic",
    "queueOffset",
    "commitOffset",
    "defaultTopic",
    "endTimestamp",
    "haServerAddr",
    "jstackEnable",
    "removeOffset",
    "subscription",
    "topicSysFlag",
    "addTopicCount",
    "bornTimestamp",
    "consumerGroup",
    "producerGroup",
    "readQueueNums",
    "transactionId",
    "beginTimestamp",
    "expressionType",
    "reconsumeTimes",
    "wipeTopicCount",
    "writeQueueNums",
    "commitLogOffset",
    "nextBeginOffset",
    "topicFilterType",
    "commitOrRollback",
    "_UNIQUE_KEY_QUERY",
    "maxReconsumeTimes",
    "fromTransactionCheck",
    "suggestWhichBrokerId",
    "suspendTimeoutMillis",
    "tranStateTableOffset",
    "defaultTopicQueueNums",
    "acceptStandardJsonOnly",
    "indexLastUpdatePhyoffset",
    "indexLastUpdateTimestamp",
];

/// The order `NAMES` is sorted in: length first, then bytes.
fn search_order(name: &[u8]) -> (usize, &[u8]) {
    (name.len(), name)
}

/// A known key: its number (distinct per name, below 128) and its static text.
pub(crate) struct KnownKey {
    pub id: u32,
    pub text: ByteStr,
}

/// The known key equal to `key`, if `key` is a known field name.
pub(crate) fn intern(key: &[u8]) -> Option<KnownKey> {
    if let [c @ b'a'..=b'z'] = key {
        let i = usize::from(c - b'a');
        return Some(KnownKey { id: u32::from(c - b'a'), text: ByteStr::from_static(&LETTERS[i..i + 1]) });
    }
    let i = NAMES.binary_search_by_key(&search_order(key), |name| search_order(name.as_bytes())).ok()?;
    // `ids_fit_in_128_bits` below keeps this in range.
    Some(KnownKey { id: (LETTERS.len() + i) as u32, text: ByteStr::from_static(NAMES[i]) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_and_distinct() {
        assert!(NAMES.windows(2).all(|w| search_order(w[0].as_bytes()) < search_order(w[1].as_bytes())));
    }

    #[test]
    fn every_key_a_typed_header_declares_is_known() {
        // Every file of the header module, so a new one is checked without being listed here.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/header");
        let mut keys = 0;
        for entry in std::fs::read_dir(&dir).expect("the header sources") {
            let source = std::fs::read_to_string(entry.expect("a directory entry").path()).expect("a header source");
            // Fields are declared one a line: `name: Type = "wireName",`.
            for line in source.lines() {
                let Some((_, rest)) = line.split_once(" = \"") else { continue };
                let Some(key) = rest.strip_suffix("\",") else { continue };
                assert!(intern(key.as_bytes()).is_some(), "{key} is not a known key");
                keys += 1;
            }
        }
        assert!(keys > 100, "found only {keys} declared keys");
    }

    #[test]
    fn ids_fit_in_128_bits() {
        assert!(LETTERS.len() + NAMES.len() <= 128);
    }

    #[test]
    fn interns_letters_and_names_only() {
        assert_eq!(intern(b"a").map(|k| k.text).as_deref(), Some("a"));
        assert_eq!(intern(b"z").map(|k| k.text).as_deref(), Some("z"));
        assert_eq!(intern(b"topic").map(|k| k.text).as_deref(), Some("topic"));
        assert_eq!(intern(b"suspendTimeoutMillis").map(|k| k.text).as_deref(), Some("suspendTimeoutMillis"));
        // A send response's region and trace flags, upper case as the Java broker writes them.
        assert_eq!(intern(b"MSG_REGION").map(|k| k.text).as_deref(), Some("MSG_REGION"));
        assert_eq!(intern(b"TRACE_ON").map(|k| k.text).as_deref(), Some("TRACE_ON"));
        assert!(intern(b"A").is_none());
        assert!(intern(b"topicX").is_none());
        assert!(intern(b"").is_none());
        assert_ne!(intern(b"z").map(|k| k.id), intern(b"batch").map(|k| k.id));
    }
}
