//! K-lines on disk: the `klines` table of the data dir's database, so that a
//! server-wide ban survives a restart.
//!
//! A k-line is in force the moment an operator sets it (`server::klines` holds the
//! list the shards check); the store thread commits it afterwards, as it does a
//! room's ban, and its setter hears `OK` once it is on disk (or that it could not be
//! saved). Lapsed k-lines are left out when the table is loaded and deleted then.

use rusqlite::{Connection, params};

use crate::protocol::KlineInfo;

/// A change to the table.
#[derive(Debug, Clone)]
pub enum KlineWrite {
    /// A k-line set (or set again: it replaces the one with its mask).
    Set(KlineInfo),
    /// The k-line of this mask lifted.
    Lift(Box<str>),
}

/// Writes one change (autocommitted: durable when this returns).
pub fn write(db: &Connection, change: &KlineWrite) -> rusqlite::Result<()> {
    match change {
        KlineWrite::Set(kline) => db
            .execute(
                "INSERT OR REPLACE INTO klines (mask, set_by, set_at, expires, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    kline.mask.as_ref(),
                    kline.set_by.as_ref(),
                    i64::try_from(kline.set_at).unwrap_or(i64::MAX),
                    kline
                        .expires
                        .map(|at| i64::try_from(at).unwrap_or(i64::MAX)),
                    kline.reason.as_ref()
                ],
            )
            .map(drop),
        KlineWrite::Lift(mask) => db
            .execute("DELETE FROM klines WHERE mask = ?1", [mask.as_ref()])
            .map(drop),
    }
}

/// The k-lines in force at `now` (Unix seconds), oldest first; lapsed ones are
/// deleted.
pub fn load(db: &Connection, now: u64) -> rusqlite::Result<Vec<KlineInfo>> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    db.execute(
        "DELETE FROM klines WHERE expires IS NOT NULL AND expires <= ?1",
        [now],
    )?;
    let mut statement = db.prepare(
        "SELECT mask, set_by, set_at, expires, reason FROM klines ORDER BY set_at, mask",
    )?;
    let rows = statement.query_map([], |row| {
        let mask: String = row.get(0)?;
        let set_by: String = row.get(1)?;
        let set_at: i64 = row.get(2)?;
        let expires: Option<i64> = row.get(3)?;
        let reason: String = row.get(4)?;
        Ok(KlineInfo {
            mask: mask.into(),
            set_by: set_by.into(),
            set_at: u64::try_from(set_at).unwrap_or(0),
            expires: expires.map(|at| u64::try_from(at).unwrap_or(0)),
            reason: reason.into(),
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn klines_round_trip_and_lapsed_ones_go() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(super::super::schema::TABLES).unwrap();
        let kline = |mask: &str, set_at, expires| KlineInfo {
            mask: mask.into(),
            set_by: "root".into(),
            set_at,
            expires,
            reason: "spam, lots".into(),
        };
        write(&db, &KlineWrite::Set(kline("*!*@10.*", 5, None))).unwrap();
        write(&db, &KlineWrite::Set(kline("bad!*@*", 3, Some(100)))).unwrap();
        write(&db, &KlineWrite::Set(kline("old!*@*", 1, Some(20)))).unwrap();
        let loaded = load(&db, 50).unwrap();
        assert_eq!(
            loaded,
            vec![kline("bad!*@*", 3, Some(100)), kline("*!*@10.*", 5, None)]
        );
        write(&db, &KlineWrite::Lift("bad!*@*".into())).unwrap();
        assert_eq!(load(&db, 50).unwrap().len(), 1);
    }
}
