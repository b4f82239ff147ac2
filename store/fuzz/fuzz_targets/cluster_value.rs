//! Fleet mode's values as read back from Redis: arbitrary bytes as a record value, as a
//! shared part and as a live-push announcement never panic and allocate within bounds
//! (damaged lengths included); a message built from the input round-trips through the
//! compressed record encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tempmx_store::cluster::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::record_value(data);
    fuzzing::announcement(data);
    if let (Some(key), Some(len), Some(rest)) = (data.get(..8), data.get(8..12), data.get(12..)) {
        let key = u64::from_le_bytes(key.try_into().unwrap_or_default());
        let len = u32::from_le_bytes(len.try_into().unwrap_or_default());
        fuzzing::part_value(rest.to_vec(), key, len);
    }
    fuzzing::round_trip(data);
});
