/**
 * Snapshot metadata in SQLite (through native/sqlite.ts): one row per snapshot. This
 * file enforces the row invariants of the contract in types.ts; overlay.ts
 * pairs every row change with its directory work.
 *
 * Table `snapshots`:
 *   id        INTEGER  primary key; names the directory <root>/snapshots/<id>
 *   key       TEXT     unique; the key, or the name once committed
 *   parent_id INTEGER  the parent's id (committed), ON DELETE RESTRICT
 *   kind      TEXT     'view' | 'active' | 'committed'
 *   labels    TEXT     JSON object of strings
 *   created, updated   INTEGER  milliseconds since the epoch
 *   size, inodes       INTEGER  usage stored at commit (0 before)
 *   remote    INTEGER  1 for a layer created by the remote-layer handler
 *
 * Crash model: the database runs in WAL mode with synchronous=FULL, so a
 * transaction that returned is durable (process crash or power loss) and one
 * that did not return is invisible after reopening. Every change is one
 * transaction; callers put their directory renames inside it (creation) or
 * after it (removal) so that "every row has its directory" always holds.
 *
 * The connection uses locking_mode=EXCLUSIVE: a second process opening the
 * same database fails at open (FailedPrecondition) instead of racing us.
 */
import { alreadyExists, failedPrecondition, internal, invalidArgument, notFound, wrap } from '../../common/errors';
import { isSqliteBusy, openSqlite, type SqliteDatabase, type SqliteStatement } from '../../native/sqlite';
import { Kind, type Labels, type Usage } from './types';

/** Bumped when the table layout changes; a database with a newer version is refused. */
export const SCHEMA_VERSION = 1;
/** Longest parent chain followed; a longer one means a corrupt table (containerd images have < 128 layers). */
export const MAX_CHAIN_LENGTH = 4096;

export interface SnapshotRow {
  readonly id: number;
  readonly key: string;
  readonly parentId: number | null;
  /** Key of the parent row, or undefined. */
  readonly parent: string | undefined;
  readonly kind: Kind;
  readonly labels: Record<string, string>;
  readonly created: Date;
  readonly updated: Date;
  readonly size: number;
  readonly inodes: number;
  readonly remote: boolean;
}

export interface NewSnapshot {
  readonly key: string;
  readonly parent: string | undefined;
  readonly kind: Kind;
  readonly labels: Labels;
  readonly usage?: Usage;
  readonly remote?: boolean;
}

interface RawRow {
  id: number;
  key: string;
  parent_id: number | null;
  parent_key: string | null;
  kind: string;
  labels: string;
  created: number;
  updated: number;
  size: number;
  inodes: number;
  remote: number;
}

const SELECT = `SELECT s.*, p.key AS parent_key FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

/** Labels without empty values (containerd drops them), as a fresh object. */
export function cleanLabels(labels: Labels | undefined): Record<string, string> {
  // fromEntries defines own properties, so a label named "__proto__" stays a label.
  return Object.fromEntries(Object.entries(labels ?? {}).filter(([, v]) => typeof v === 'string' && v !== ''));
}

function parseLabels(json: string, id: number): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw internal(`snapshot row ${id}: labels are not JSON`, { id }, err);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw internal(`snapshot row ${id}: labels are not an object`, { id });
  return cleanLabels(value as Record<string, string>);
}

function toRow(raw: RawRow): SnapshotRow {
  if (raw.kind !== Kind.View && raw.kind !== Kind.Active && raw.kind !== Kind.Committed) {
    throw internal(`snapshot row ${raw.id}: bad kind ${raw.kind}`, { id: raw.id });
  }
  return {
    id: raw.id,
    key: raw.key,
    parentId: raw.parent_id,
    parent: raw.parent_key ?? undefined,
    kind: raw.kind,
    labels: parseLabels(raw.labels, raw.id),
    created: new Date(raw.created),
    updated: new Date(raw.updated),
    size: raw.size,
    inodes: raw.inodes,
    remote: raw.remote === 1,
  };
}

export class MetaStore {
  /** Prepared statements by SQL text (a handful, compiled once). */
  private readonly statements = new Map<string, SqliteStatement>();

  private constructor(private readonly db: SqliteDatabase) {}

  private stmt(sql: string): SqliteStatement {
    let s = this.statements.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Open (creating if needed) the database file; fails with FailedPrecondition when another process holds it. */
  static open(file: string): MetaStore {
    let db: SqliteDatabase | undefined;
    try {
      db = openSqlite(file, { exclusive: true });
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) throw failedPrecondition(`${file}: schema version ${version} is newer than ${SCHEMA_VERSION}`);
      const conn = db;
      conn
        .transaction(() => {
          conn.exec(`CREATE TABLE IF NOT EXISTS snapshots (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
            kind TEXT NOT NULL CHECK (kind IN ('view', 'active', 'committed')),
            labels TEXT NOT NULL DEFAULT '{}',
            created INTEGER NOT NULL,
            updated INTEGER NOT NULL,
            size INTEGER NOT NULL DEFAULT 0,
            inodes INTEGER NOT NULL DEFAULT 0,
            remote INTEGER NOT NULL DEFAULT 0
          )`);
          conn.exec('CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id)');
          conn.pragma(`user_version = ${SCHEMA_VERSION}`);
        })
        .immediate();
      return new MetaStore(db);
    } catch (err) {
      db?.close();
      if (isSqliteBusy(err)) {
        throw failedPrecondition(`${file} is in use by another process`, { file }, err);
      }
      throw wrap(err, `cannot open snapshot metadata ${file}`, { file });
    }
  }

  /** Run fn in one write transaction (BEGIN IMMEDIATE); a throw rolls everything back. fn must be synchronous. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  find(key: string): SnapshotRow | undefined {
    const raw = this.stmt(`${SELECT} WHERE s.key = ?`).get(key) as RawRow | undefined;
    return raw === undefined ? undefined : toRow(raw);
  }

  get(key: string): SnapshotRow {
    const row = this.find(key);
    if (row === undefined) throw notFound(`snapshot ${JSON.stringify(key)} does not exist`, { key });
    return row;
  }

  /** The parent chain of `row`, nearest first. */
  parents(row: SnapshotRow): SnapshotRow[] {
    const chain: SnapshotRow[] = [];
    const byId = this.stmt(`${SELECT} WHERE s.id = ?`);
    for (let next = row.parentId; next !== null; ) {
      if (chain.length >= MAX_CHAIN_LENGTH) throw internal(`snapshot ${row.key}: parent chain longer than ${MAX_CHAIN_LENGTH}`);
      const raw = byId.get(next) as RawRow | undefined;
      if (raw === undefined) throw internal(`snapshot ${row.key}: parent row ${next} is missing`, { key: row.key });
      const parent = toRow(raw);
      chain.push(parent);
      next = parent.parentId;
    }
    return chain;
  }

  /** Every row, in creation order. */
  list(): SnapshotRow[] {
    return (this.stmt(`${SELECT} ORDER BY s.id`).all() as RawRow[]).map(toRow);
  }

  /** Ids of every row, as directory names. */
  ids(): Set<string> {
    const rows = this.stmt('SELECT id FROM snapshots').all() as { id: number }[];
    return new Set(rows.map((r) => String(r.id)));
  }

  /** Insert an active, view or (remote) committed snapshot. */
  insert(n: NewSnapshot): SnapshotRow {
    if (n.key === '') throw invalidArgument('snapshot key must not be empty');
    if (this.find(n.key) !== undefined) throw alreadyExists(`snapshot ${JSON.stringify(n.key)} already exists`, { key: n.key });
    let parentId: number | null = null;
    if (n.parent !== undefined && n.parent !== '') {
      const parent = this.find(n.parent);
      if (parent === undefined) throw notFound(`parent snapshot ${JSON.stringify(n.parent)} does not exist`, { parent: n.parent });
      if (parent.kind !== Kind.Committed) {
        throw invalidArgument(`parent snapshot ${JSON.stringify(n.parent)} is not committed`, { parent: n.parent });
      }
      parentId = parent.id;
    }
    const now = Date.now();
    this.stmt(
      `INSERT INTO snapshots (key, parent_id, kind, labels, created, updated, size, inodes, remote)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(n.key, parentId, n.kind, JSON.stringify(cleanLabels(n.labels)), now, now, n.usage?.size ?? 0, n.usage?.inodes ?? 0, n.remote ? 1 : 0);
    return this.get(n.key);
  }

  /** Active `key` becomes committed `name`: labels replaced, times reset, usage stored. */
  commit(key: string, name: string, labels: Labels, usage: Usage): SnapshotRow {
    if (name === '') throw invalidArgument('committed snapshot name must not be empty');
    if (this.find(name) !== undefined) throw alreadyExists(`snapshot ${JSON.stringify(name)} already exists`, { name });
    const row = this.get(key);
    if (row.kind !== Kind.Active) throw failedPrecondition(`snapshot ${JSON.stringify(key)} is ${row.kind}, not active`, { key });
    const now = Date.now();
    this.stmt(
      `UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, created = ?, updated = ?, size = ?, inodes = ? WHERE id = ?`,
    ).run(name, JSON.stringify(cleanLabels(labels)), now, now, usage.size, usage.inodes, row.id);
    return this.get(name);
  }

  /** Delete row `key`; refused while other snapshots name it as parent. */
  remove(key: string): SnapshotRow {
    const row = this.get(key);
    const children = this.stmt('SELECT count(*) AS n FROM snapshots WHERE parent_id = ?').get(row.id) as { n: number };
    if (children.n > 0) {
      throw failedPrecondition(`snapshot ${JSON.stringify(key)} has ${children.n} child snapshot(s)`, { key });
    }
    this.stmt('DELETE FROM snapshots WHERE id = ?').run(row.id);
    return row;
  }

  /** Replace the labels of `key`. */
  setLabels(key: string, labels: Labels): SnapshotRow {
    const row = this.get(key);
    this.stmt('UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?').run(JSON.stringify(cleanLabels(labels)), Date.now(), row.id);
    return this.get(key);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
