// Output of the check command: one line per step, marked OK or FAILED, with every known secret
// (the token, the client secret, the LDAP bind password) replaced before the text is written.

import { formEncode } from "../url";

const HIDDEN = "(hidden)";
const STATUS_WIDTH = 8;

export class Report {
  private readonly secrets: string[] = [];
  /** Number of steps reported as FAILED. */
  failures = 0;
  /** Number of steps reported. */
  steps = 0;

  constructor(private readonly output: (this: void, text: string) => void) {}

  /** Adds a value that must never be written, together with its form-encoded spelling. */
  addSecret(secret: string | undefined): void {
    if (secret === undefined || secret === "") return;
    this.secrets.push(secret, formEncode(secret));
    // Longer secrets first, so that no shorter one leaves part of a longer one behind.
    this.secrets.sort((a, b) => b.length - a.length);
  }

  ok(step: string, detail: string): void {
    this.steps += 1;
    this.line(`${pad("OK")}${step}: ${detail}`);
  }

  failed(step: string, detail: string): void {
    this.steps += 1;
    this.failures += 1;
    this.line(`${pad("FAILED")}${step}: ${detail}`);
  }

  /** Writes one line of text after removing the secrets from it. */
  line(text: string): void {
    this.output(this.hideSecrets(text) + "\n");
  }

  hideSecrets(text: string): string {
    let result = text;
    for (const secret of this.secrets) {
      result = replacePlain(result, secret, HIDDEN);
    }
    return result;
  }
}

function pad(status: string): string {
  return status + string.rep(" ", STATUS_WIDTH - status.length);
}

/** Replaces every occurrence of `needle` in `text`, taken literally rather than as a Lua pattern. */
export function replacePlain(text: string, needle: string, replacement: string): string {
  const pieces: string[] = [];
  let position = 1;
  while (true) {
    const [first, last] = string.find(text, needle, position, true);
    if (first === undefined || last === undefined) break;
    pieces.push(string.sub(text, position, first - 1), replacement);
    position = last + 1;
  }
  pieces.push(string.sub(text, position));
  return pieces.join("");
}
