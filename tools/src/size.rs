//! Byte sizes: parsed from the command line (`4096`, `64K`, `64M`, `1.5G`,
//! `1GiB`) by `parse-size`, and shown to people by `bytesize`
//! (`39.9 MiB (41,943,103 bytes)`).

/// Parses a size: a number (digits, optionally a fraction: `1.5G`) and an
/// optional unit, case-insensitive, with or without a space: `B`, then
/// `K`, `M`, `G`, `T`, `P`, `E`, each a power of 1024 however spelled
/// (`K`, `KB`, `KiB` are all 1024 bytes).
pub fn parse(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("{s:?} is not a size ({e}; examples: 4096, 64K, 64M, 1.5G, 1GiB)"))
}

/// `n` with its thousands grouped: `41,943,103`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` bytes for people: `14 bytes` below a KiB, else the size in binary
/// units with the exact count, `39.9 MiB (41,943,103 bytes)`.
pub fn human(n: u64) -> String {
    if n < 1024 {
        return format!("{n} byte{}", if n == 1 { "" } else { "s" });
    }
    format!(
        "{} ({} bytes)",
        bytesize::ByteSize(n).display().iec(),
        grouped(n)
    )
}

/// `n` bytes in a short form for tables: `14 B`, `39.9 MiB`.
pub fn short(n: u64) -> String {
    bytesize::ByteSize(n).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("64K"), Ok(64 << 10));
        assert_eq!(parse("64k"), Ok(64 << 10));
        assert_eq!(parse("64KB"), Ok(64 << 10));
        assert_eq!(parse("64m"), Ok(64 << 20));
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert_eq!(parse("1 G"), Ok(1 << 30));
        assert_eq!(parse("1.5G"), Ok(3 << 29));
        assert_eq!(parse("2T"), Ok(2 << 40));
        for bad in ["", "1X", "12Q", "-1", "99999999999T", "G"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("is not a size"), "{bad}: {e}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(41_943_103), "41,943,103");
        assert_eq!(human(1), "1 byte");
        assert_eq!(human(14), "14 bytes");
        assert_eq!(human(41_943_103), "40.0 MiB (41,943,103 bytes)");
        assert_eq!(human(1536), "1.5 KiB (1,536 bytes)");
        assert_eq!(short(14), "14 B");
        assert_eq!(short(1 << 30), "1.0 GiB");
    }
}
