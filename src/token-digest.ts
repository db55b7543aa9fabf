// Cache keys for tokens. The cache must not keep raw tokens, and hashing them with SHA-256 in
// Lua costs about 30 microseconds, as much as a whole login. So each auth worker draws a random
// 128-bit seed at start and hashes tokens with a seeded multiply-rotate hash in two 64-bit lanes.
// NOTE: this is not a cryptographic MAC. It resists forged cache hits because the seed and the
// digests never leave the worker: matching a cached entry means guessing a 128-bit value
// through logins, each of which goes to the identity provider when it misses.

// 64-bit odd constants, built from 32-bit halves because a JavaScript number literal cannot
// hold them exactly and Lua must see integers, not floats.
const PRIME_1 = (0x9e3779b1 << 32) | 0x85ebca87;
const PRIME_2 = (0xc2b2ae3d << 32) | 0x27d4eb4f;
const PRIME_3 = (0x165667b1 << 32) | 0x9e3779f9;

/** Lua's logical right shift on 64-bit integers; TypeScriptToLua's >>> works on 32 bits. */
declare const shiftRight: LuaBitwiseRightShift<number, number, number>;

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | shiftRight(value, 64 - bits);
}

function mixBlock(accumulator: number, block: number): number {
  return rotateLeft(accumulator + block * PRIME_2, 31) * PRIME_1;
}

function avalanche(value: number): number {
  let hash = value;
  hash = (hash ^ shiftRight(hash, 33)) * PRIME_2;
  hash = (hash ^ shiftRight(hash, 29)) * PRIME_3;
  return hash ^ shiftRight(hash, 32);
}

/** Reads 16 random bytes for the seed, from /dev/urandom where it exists. */
export function randomSeed(): [number, number] {
  const [file] = io.open("/dev/urandom", "rb");
  const bytes = file?.read(16);
  file?.close();
  if (bytes !== undefined && bytes.length === 16) {
    const [low, high] = string.unpack("<i8i8", bytes);
    return [low, high];
  }
  // Without /dev/urandom, mix what differs between processes and runs.
  const fallback = `${os.time()} ${os.clock()} ${tostring({})} ${math.random(0, 0x7fffffff)}`;
  return [hashLane(fallback, PRIME_3), hashLane(fallback, PRIME_1)];
}

function hashLane(text: string, seed: number): number {
  let accumulator = seed + text.length * PRIME_3;
  const blocks = Math.floor(text.length / 8);
  for (let index = 0; index < blocks; index++) {
    accumulator = mixBlock(accumulator, string.unpack("<i8", text, index * 8 + 1)[0]);
  }
  const tail = string.sub(text, blocks * 8 + 1) + string.rep(string.char(0), 8);
  accumulator = mixBlock(accumulator, string.unpack("<i8", tail)[0]);
  return avalanche(accumulator);
}

/** Returns a 16-byte digest of `token` under the worker's seed. */
export function tokenDigest(token: string, seed: readonly [number, number]): string {
  return string.pack("<i8i8", hashLane(token, seed[0]), hashLane(token, seed[1]));
}
