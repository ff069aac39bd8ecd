/**
 * SQLite through better-sqlite3, the one module that imports it. A database
 * opened here is durable by construction: WAL journal with synchronous=FULL
 * (a transaction that returned survives a process crash or power loss; one
 * that did not is invisible after reopening), foreign keys enforced, and no
 * busy waiting (timeout 0): a lock held elsewhere fails at once with the
 * driver's SQLITE_BUSY error instead of blocking the event loop.
 *
 * The connection is synchronous (better-sqlite3's model): keep transactions
 * short; they run on the calling thread.
 */
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;
export type SqliteStatement = Database.Statement;

export interface OpenSqliteOptions {
  /**
   * locking_mode=EXCLUSIVE: the first read or write takes the file lock and
   * keeps it until close, so a second process opening the same database
   * fails (SQLITE_BUSY) instead of racing this one.
   */
  exclusive?: boolean;
}

/** Whether `err` is SQLite's "database is locked" (another connection holds it). */
export function isSqliteBusy(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'SQLITE_BUSY';
}

/**
 * Open (creating if needed) the database file with WAL, synchronous=FULL and
 * foreign keys on. Throws the driver's error (closing the connection) when a
 * pragma fails, e.g. SQLITE_BUSY when another process holds an exclusive lock.
 */
export function openSqlite(file: string, { exclusive = false }: OpenSqliteOptions = {}): SqliteDatabase {
  const db = new Database(file, { timeout: 0 });
  try {
    if (exclusive) db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
