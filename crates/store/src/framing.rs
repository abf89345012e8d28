//! Log records framed with their offsets: offset (u64 BE), length (u32 LE), record. The
//! format of the Redis backend's stream runs and of the spill file.

/// Appends one framed record to `buf`.
pub(crate) fn push(buf: &mut Vec<u8>, offset: u64, record: &[u8]) {
    buf.extend_from_slice(&offset.to_be_bytes());
    buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
    buf.extend_from_slice(record);
}

/// The whole records at the start of `bytes`, and how many bytes they take: a record cut short
/// ends the list.
pub(crate) fn read(bytes: &[u8]) -> (Vec<(u64, &[u8])>, usize) {
    let mut records = Vec::new();
    let mut rest = bytes;
    while let Some((offset, after)) = rest.split_first_chunk::<8>() {
        let Some((len, after)) = after.split_first_chunk::<4>() else { break };
        let len = u32::from_le_bytes(*len) as usize;
        if after.len() < len {
            break;
        }
        records.push((u64::from_be_bytes(*offset), &after[..len]));
        rest = &after[len..];
    }
    (records, bytes.len() - rest.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn records_read_back_and_a_cut_one_ends_the_list() {
        let mut buf = Vec::new();
        super::push(&mut buf, 7, b"first");
        super::push(&mut buf, u64::MAX, b"");
        let whole = buf.len();
        super::push(&mut buf, 9, b"cut short");
        buf.truncate(buf.len() - 1);
        let (records, used) = super::read(&buf);
        assert_eq!(records, [(7, &b"first"[..]), (u64::MAX, &b""[..])]);
        assert_eq!(used, whole);
    }
}
