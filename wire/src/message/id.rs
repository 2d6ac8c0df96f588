//! Message ids.
//!
//! - The offset message id (`msgId` in a send response, Java's `offsetMsgId`) is the store host
//!   and the physical offset, in upper-case hex: 4-byte IPv4 + i32 port + i64 offset = 32 digits,
//!   or 16-byte IPv6 + port + offset = 56 digits. VIEW_MESSAGE_BY_ID decodes it back.
//! - The unique key (`UNIQ_KEY` property, the `msgId` users see) is made by the producer like
//!   Java's `MessageClientIDSetter`: ip, pid, a per-process hash, milliseconds since the start of
//!   the month, and a counter.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::MessageError;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX_UPPER[(b >> 4) as usize] as char);
        out.push(HEX_UPPER[(b & 0xf) as usize] as char);
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2).map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?)).collect()
}

/// The offset message id of a record stored at `physical_offset` by `store_host`.
pub fn offset_msg_id(store_host: SocketAddr, physical_offset: i64) -> String {
    let mut out = String::with_capacity(OFFSET_MSG_ID_MAX_LEN);
    push_offset_msg_id(&mut out, store_host, physical_offset);
    out
}

/// The longest offset message id: an IPv6 store host's.
pub const OFFSET_MSG_ID_MAX_LEN: usize = 2 * (16 + 4 + 8);

/// Appends the offset message id to `out` (a batch's ids go into one string).
pub fn push_offset_msg_id(out: &mut String, store_host: SocketAddr, physical_offset: i64) {
    match store_host.ip() {
        IpAddr::V4(ip) => push_hex(out, &ip.octets()),
        IpAddr::V6(ip) => push_hex(out, &ip.octets()),
    }
    push_hex(out, &i32::from(store_host.port()).to_be_bytes());
    push_hex(out, &physical_offset.to_be_bytes());
}

/// Store host and physical offset from an offset message id.
pub fn decode_offset_msg_id(id: &str) -> Result<(SocketAddr, i64), MessageError> {
    let bad = || MessageError::BadMessageId(id.to_owned());
    let bytes = parse_hex(id).ok_or_else(bad)?;
    let ip_len = match bytes.len() {
        16 => 4,
        28 => 16,
        _ => return Err(bad()),
    };
    let ip = if ip_len == 4 {
        let octets: [u8; 4] = bytes[..4].try_into().map_err(|_| bad())?;
        IpAddr::V4(Ipv4Addr::from(octets))
    } else {
        let octets: [u8; 16] = bytes[..16].try_into().map_err(|_| bad())?;
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let port: [u8; 4] = bytes[ip_len..ip_len + 4].try_into().map_err(|_| bad())?;
    let offset: [u8; 8] = bytes[ip_len + 4..].try_into().map_err(|_| bad())?;
    Ok((SocketAddr::new(ip, i32::from_be_bytes(port) as u16), i64::from_be_bytes(offset)))
}

/// Makes unique keys (`UNIQ_KEY`) the way Java producers do.
///
/// Java takes the month boundary in the JVM's local time zone; this uses UTC, which only moves
/// the embedded "time since month start" and keeps keys unique. Not shared between threads:
/// give each producer its own.
#[derive(Debug, Clone)]
pub struct UniqueIdGenerator {
    prefix: String,
    month_start_ms: i64,
    next_month_start_ms: i64,
    counter: u16,
}

impl UniqueIdGenerator {
    /// `ip` of this host, `pid` of this process, and a per-instance `salt` (Java uses a class
    /// loader's hash code) so two generators in one process differ.
    pub fn new(ip: IpAddr, pid: u32, salt: i32) -> Self {
        let mut prefix = String::with_capacity(44);
        match ip {
            IpAddr::V4(ip) => push_hex(&mut prefix, &ip.octets()),
            IpAddr::V6(ip) => push_hex(&mut prefix, &ip.octets()),
        }
        push_hex(&mut prefix, &(pid as u16).to_be_bytes());
        push_hex(&mut prefix, &salt.to_be_bytes());
        Self { prefix, month_start_ms: 0, next_month_start_ms: 0, counter: 0 }
    }

    /// The next key, for a message born at `now_ms` (milliseconds since the Unix epoch).
    pub fn next(&mut self, now_ms: i64) -> String {
        if now_ms >= self.next_month_start_ms || now_ms < self.month_start_ms {
            (self.month_start_ms, self.next_month_start_ms) = month_bounds_utc(now_ms);
        }
        let diff = (now_ms - self.month_start_ms) as i32;
        let mut out = String::with_capacity(self.prefix.len() + 12);
        out.push_str(&self.prefix);
        push_hex(&mut out, &diff.to_be_bytes());
        push_hex(&mut out, &self.counter.to_be_bytes());
        self.counter = self.counter.wrapping_add(1);
        out
    }
}

/// Start of the UTC month containing `ms`, and of the next one.
fn month_bounds_utc(ms: i64) -> (i64, i64) {
    const DAY_MS: i64 = 86_400_000;
    let days = ms.div_euclid(DAY_MS);
    let (y, m, _) = civil_from_days(days);
    let start = days_from_civil(y, m, 1) * DAY_MS;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1) * DAY_MS)
}

// Howard Hinnant's civil-date algorithms (public domain), proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_msg_id_matches_the_java_broker() {
        // From the Java broker's send response: store host 127.0.0.1:10911, offset 0x5B8.
        let host: SocketAddr = "127.0.0.1:10911".parse().expect("addr");
        assert_eq!(offset_msg_id(host, 0x5b8), "7F00000100002A9F00000000000005B8");
        assert_eq!(decode_offset_msg_id("7F00000100002A9F00000000000005B8").expect("valid"), (host, 0x5b8));
        assert_eq!(decode_offset_msg_id("7f00000100002a9f00000000000005b8").expect("lower case"), (host, 0x5b8));
    }

    #[test]
    fn ipv6_offset_msg_ids_have_56_digits() {
        let host: SocketAddr = "[fd00::2]:10911".parse().expect("addr");
        let id = offset_msg_id(host, i64::MAX);
        assert_eq!(id.len(), 56);
        assert_eq!(id.len(), OFFSET_MSG_ID_MAX_LEN);
        assert_eq!(decode_offset_msg_id(&id).expect("valid"), (host, i64::MAX));
    }

    #[test]
    fn pushed_ids_append_to_what_is_there() {
        let host: SocketAddr = "127.0.0.1:10911".parse().expect("addr");
        let mut ids = String::from("7F00000100002A9F00000000000005B8,");
        push_offset_msg_id(&mut ids, host, 0x5b8 + 1024);
        assert_eq!(ids, format!("{},{}", offset_msg_id(host, 0x5b8), offset_msg_id(host, 0x5b8 + 1024)));
    }

    #[test]
    fn bad_ids_are_rejected() {
        for id in ["", "XYZ", "7F000001", "7F00000100002A9F00000000000005B", "7F00000100002A9F00000000000005BG"] {
            assert!(decode_offset_msg_id(id).is_err(), "{id}");
        }
    }

    #[test]
    fn unique_ids_have_java_layout_and_count_up() {
        let mut gen = UniqueIdGenerator::new("192.0.2.2".parse().expect("ip"), 0x1234, 0x0102_0304);
        // 2026-11-22T00:00:00Z; the month started 2026-11-01T00:00:00Z = 1793491200000.
        let now = 1_795_305_600_000;
        let a = gen.next(now);
        let b = gen.next(now);
        assert_eq!(a.len(), 32);
        assert_eq!(&a[..20], "C0000202123401020304");
        let since_month_start = (now - 1_793_491_200_000) as i32;
        assert_eq!(&a[20..28], format!("{since_month_start:08X}"));
        assert_eq!(&a[28..], "0000");
        assert_eq!(&b[28..], "0001");
        let v6 = UniqueIdGenerator::new("fd00::2".parse().expect("ip"), 1, 1).next(now);
        assert_eq!(v6.len(), 56);
    }

    #[test]
    fn month_bounds() {
        assert_eq!(month_bounds_utc(0), (0, 31 * 86_400_000));
        // 2024-02-15 → Feb 2024 has 29 days.
        let feb15 = days_from_civil(2024, 2, 15) * 86_400_000;
        let (s, e) = month_bounds_utc(feb15);
        assert_eq!((e - s) / 86_400_000, 29);
        assert_eq!(civil_from_days(days_from_civil(1999, 12, 31)), (1999, 12, 31));
    }
}
