// The per-worker token cache. Webmail opens a new IMAP connection for almost every page with the
// same token, so a recent decision about (login name, token) is reused instead of asking the
// identity provider again. Only the token's validity and its binding to the login name are
// cached: the mailbox check runs on every login.
//
// Eviction keeps two generations: new entries go into the young table, and when it is full the
// old table is dropped and the young one becomes old. An entry used while old moves back to
// the young table, so recently used entries survive, as with LRU, without a linked list that
// would add a Lua table per entry to the heap.

export interface CacheEntry {
  /** Seconds since the epoch after which the entry is not used. */
  readonly expires: number;
  readonly ok: boolean;
  /** pass_attrs fields of a positive entry. */
  readonly fields?: LuaTable<string, string>;
  /** Refusal reason of a negative entry. */
  readonly reason?: string;
}

export class TokenCache {
  private young = new LuaTable<string, CacheEntry>();
  private old = new LuaTable<string, CacheEntry>();
  private youngCount = 0;
  private readonly generationSize: number;

  /** `capacity` bounds the entries kept, counting both generations. */
  constructor(capacity: number) {
    this.generationSize = Math.max(1, Math.floor(capacity / 2));
  }

  get(key: string, now: number): CacheEntry | undefined {
    let entry = this.young.get(key);
    if (entry === undefined) {
      entry = this.old.get(key);
      if (entry === undefined) {
        return undefined;
      }
      this.old.delete(key);
      if (entry.expires > now) {
        this.insert(key, entry);
      }
    }
    if (entry.expires <= now) {
      this.young.delete(key);
      return undefined;
    }
    return entry;
  }

  set(key: string, entry: CacheEntry): void {
    if (this.young.has(key)) {
      this.young.set(key, entry);
      return;
    }
    this.old.delete(key);
    this.insert(key, entry);
  }

  private insert(key: string, entry: CacheEntry): void {
    if (this.youngCount >= this.generationSize) {
      this.old = this.young;
      this.young = new LuaTable();
      this.youngCount = 0;
    }
    this.young.set(key, entry);
    this.youngCount += 1;
  }
}
