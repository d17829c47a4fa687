//! strfry's `--range START-END`: since/until relative to now, e.g. `2M-`, `1Y-3w`, `-1d`.
//! Units: `s m h d w`, `M` (30.5 days) and `Y` (365.2425 days); a bare number is seconds.

/// `(since, until)` for `text` at time `now`; an empty side is open (0 / `now`).
pub fn parse(text: &str, now: u64) -> Result<(u64, u64), String> {
    let Some((start, end)) = text.split_once('-') else {
        return Err(format!(
            "bad range '{text}': expected START-END, e.g. 2M- or 1Y-3w"
        ));
    };
    let since = if start.is_empty() {
        0
    } else {
        now.saturating_sub(duration(start)?)
    };
    let until = if end.is_empty() {
        now
    } else {
        now.saturating_sub(duration(end)?)
    };
    if since > until {
        return Err(format!("bad range '{text}': start is after end"));
    }
    Ok((since, until))
}

fn duration(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse::<u64>()
        .map_err(|_| format!("bad duration '{s}'"))? as f64;
    let secs = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 7.0 * 86_400.0,
        "M" => 30.5 * 86_400.0,
        "Y" => 365.2425 * 86_400.0,
        _ => {
            return Err(format!(
                "bad duration '{s}': unit must be one of s m h d w M Y"
            ))
        }
    };
    Ok((n * secs) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let now = 1_000_000_000;
        assert_eq!(parse("2M-", now), Ok((now - 2 * 2_635_200, now)));
        assert_eq!(parse("1d-1h", now), Ok((now - 86_400, now - 3600)));
        assert_eq!(parse("-1w", now), Ok((0, now - 604_800)));
        assert_eq!(parse("60-", now), Ok((now - 60, now)));
        assert!(parse("1h-1d", now).is_err());
        assert!(parse("1x-", now).is_err());
        assert!(parse("5", now).is_err());
    }
}
